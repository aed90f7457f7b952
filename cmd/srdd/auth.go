package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/srdd/srdd/auth"
)

// authCmd manages the users file (--auth-file of srdd server), so that
// nobody edits hashes by hand. A running server picks changes up on SIGHUP.
func authCmd() *cobra.Command {
	c := &cobra.Command{Use: "auth", Short: "Manage the users file (principals, roles, tokens, passwords)"}
	var file string
	c.PersistentFlags().StringVar(&file, "file", "", "users file (created with mode 0600 if missing)")
	_ = c.MarkPersistentFlagRequired("file")

	// usersCmd is a subcommand that reads the users file (an empty one if
	// it is missing and create is set) and hands it to run.
	usersCmd := func(use, short string, create bool, run func(cmd *cobra.Command, f *auth.File) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				f, err := readUsers(file, create)
				if err != nil {
					return err
				}
				return run(cmd, f)
			}}
	}

	var name, token, password string
	var roles []string
	add := usersCmd("add", "Add a user, or add roles and secrets to one; prints a generated token when neither --token nor --password is given", true,
		func(cmd *cobra.Command, f *auth.File) error {
			generated := false
			if token == "" && password == "" {
				var err error
				if token, err = auth.NewToken(); err != nil {
					return err
				}
				generated = true
			}
			if err := f.AddUser(name, roles, token, password); err != nil {
				return fmt.Errorf("cannot add user: %w", err)
			}
			if err := auth.WriteFile(file, f); err != nil {
				return err
			}
			if generated {
				fmt.Fprintln(cmd.OutOrStdout(), token)
				fmt.Fprintln(cmd.ErrOrStderr(), "srdd: token generated; it is shown once and stored only as a hash")
			}
			return nil
		})
	add.Flags().StringVar(&name, "name", "", "user name (principal)")
	add.Flags().StringArrayVar(&roles, "role", nil, "role: admin, code, metrics, read:GLOB, write:GLOB, create:GLOB (repeatable)")
	add.Flags().StringVar(&token, "token", "", "bearer token to accept for this user (default: generate one)")
	add.Flags().StringVar(&password, "password", "", "password for HTTP Basic (Livy clients)")
	_ = add.MarkFlagRequired("name")

	ls := usersCmd("ls", "List users, their roles and how many tokens and passwords each has", false,
		func(cmd *cobra.Command, f *auth.File) error {
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tROLES\tTOKENS\tPASSWORDS")
			for _, u := range f.Users {
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", u.Name, strings.Join(u.Roles, ","), len(u.Tokens), len(u.Passwords))
			}
			return w.Flush()
		})
	var rmName string
	rm := usersCmd("rm", "Remove a user", false, func(_ *cobra.Command, f *auth.File) error {
		if !f.RemoveUser(rmName) {
			return fmt.Errorf("cannot remove user %q: not in %s", rmName, file)
		}
		return auth.WriteFile(file, f)
	})
	rm.Flags().StringVar(&rmName, "name", "", "user name")
	_ = rm.MarkFlagRequired("name")
	c.AddCommand(add, ls, rm)
	return c
}

func readUsers(path string, create bool) (*auth.File, error) {
	f, err := auth.ReadFile(path)
	if create && errors.Is(err, fs.ErrNotExist) {
		return &auth.File{}, nil
	}
	return f, err
}
