package redisapi

import (
	"fmt"
	"slices"
	"strings"
)

// The connection's own commands: HELLO, AUTH, CLIENT, COMMAND, INFO,
// DBSIZE.

// authenticate checks AUTH's arguments (a token, or a user and a
// password) and logs the connection in; it answers WRONGPASS otherwise
// and leaves the connection as it was.
func (c *conn) authenticate(args [][]byte) reply {
	if c.s.cfg.Auth == nil {
		return errReply("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
	}
	var cr credential
	switch len(args) {
	case 1:
		cr.token = string(args[0])
	case 2:
		cr.user, cr.password = string(args[0]), string(args[1])
	default:
		return errReply("ERR syntax error")
	}
	p, found := c.s.resolve(cr)
	if !found {
		return errReply("WRONGPASS invalid username-password pair or user is disabled.")
	}
	if cr.user == "default" && p.Name != "default" {
		cr = credential{token: cr.password} // a token given as user default's password
	}
	c.login(p, cr)
	return done
}

func (c *conn) auth(args [][]byte) reply {
	r := c.authenticate(args[1:])
	if r.err == "" {
		c.w.Simple("OK")
	}
	return r
}

// hello is HELLO [protover [AUTH user password] [SETNAME name]].
func (c *conn) hello(args [][]byte) reply {
	proto := c.w.Proto
	if len(args) > 1 {
		n, isNum := integer(args[1])
		if !isNum {
			return errReply("ERR Protocol version is not an integer or out of range")
		}
		if n != 2 && n != 3 {
			return errReply("NOPROTO sorry, this protocol version is not supported.")
		}
		proto = int(n)
	}
	name, setName := "", false
	for i := 2; i < len(args); i++ {
		switch opt := strings.ToUpper(string(args[i])); {
		case opt == "AUTH" && i+2 < len(args):
			if r := c.authenticate(args[i+1 : i+3]); r.err != "" {
				return r
			}
			i += 2
		case opt == "SETNAME" && i+1 < len(args):
			name, setName = string(args[i+1]), true
			i++
		default:
			return errReply("ERR Syntax error in HELLO option '%s'", printable(args[i], 32))
		}
	}
	if !c.authed {
		return errReply("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
	}
	if setName {
		if r := c.setName(name); r.err != "" {
			return r
		}
	}
	c.w.Proto = proto
	c.w.Map(7)
	c.w.BulkString("server")
	c.w.BulkString("srdd")
	c.w.BulkString("version")
	c.w.BulkString(c.s.cfg.Version)
	c.w.BulkString("proto")
	c.w.Int(int64(proto))
	c.w.BulkString("id")
	c.w.Int(c.id)
	c.w.BulkString("mode")
	c.w.BulkString("standalone")
	c.w.BulkString("role")
	c.w.BulkString("master")
	c.w.BulkString("modules")
	c.w.Array(0)
	return done
}

func (c *conn) setName(name string) reply {
	if strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r > '~' }) || len(name) > 128 {
		return errReply("ERR Client names cannot contain spaces, newlines or special characters.")
	}
	c.name = name
	return done
}

// client is CLIENT SETNAME, GETNAME, ID, INFO and SETINFO.
func (c *conn) client(args [][]byte) reply {
	sub := strings.ToUpper(string(args[1]))
	switch {
	case sub == "SETNAME" && len(args) == 3:
		if r := c.setName(string(args[2])); r.err != "" {
			return r
		}
		c.w.Simple("OK")
	case sub == "GETNAME" && len(args) == 2:
		if c.name == "" {
			c.w.Null()
		} else {
			c.w.BulkString(c.name)
		}
	case sub == "ID" && len(args) == 2:
		c.w.Int(c.id)
	case sub == "INFO" && len(args) == 2:
		c.w.Verbatim(c.infoLine())
	case sub == "SETINFO" && len(args) == 4:
		switch strings.ToUpper(string(args[2])) {
		case "LIB-NAME":
			c.lib[0] = printable(args[3], 64)
		case "LIB-VER":
			c.lib[1] = printable(args[3], 64)
		default:
			return errReply("ERR Unrecognized option '%s'", printable(args[2], 32))
		}
		c.w.Simple("OK")
	default:
		return errReply("ERR unknown subcommand or wrong number of arguments for '%s'. Try CLIENT HELP.", printable(args[1], 32))
	}
	return done
}

func (c *conn) infoLine() string {
	user := "default"
	if c.principal != nil {
		user = c.principal.Name
	}
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s db=0 user=%s resp=%d lib-name=%s lib-ver=%s\n",
		c.id, c.nc.RemoteAddr(), c.nc.LocalAddr(), c.name, user, c.w.Proto, c.lib[0], c.lib[1])
}

// commandCmd is COMMAND, COMMAND COUNT, COMMAND INFO and COMMAND DOCS:
// enough for redis-cli, which asks for DOCS to give hints.
func (c *conn) commandCmd(args [][]byte) reply {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	sub := ""
	if len(args) > 1 {
		sub = strings.ToUpper(string(args[1]))
	}
	switch sub {
	case "":
		c.w.Array(len(names))
		for _, n := range names {
			c.commandInfo(n)
		}
	case "COUNT":
		c.w.Int(int64(len(names)))
	case "INFO":
		c.w.Array(len(args) - 2)
		for _, a := range args[2:] {
			if n := strings.ToUpper(string(a)); commands[n].run != nil {
				c.commandInfo(n)
			} else {
				c.w.Null()
			}
		}
	case "DOCS":
		c.w.Map(0)
	default:
		return errReply("ERR unknown subcommand '%s'. Try COMMAND HELP.", printable(args[1], 32))
	}
	return done
}

// commandInfo writes one command's entry as COMMAND INFO gives it.
func (c *conn) commandInfo(name string) {
	spec := commands[name]
	flags := []string{"readonly"}
	if spec.write {
		flags = []string{"write"}
	}
	first, last, step := int64(1), int64(1), int64(1)
	switch name {
	case "MGET", "DEL", "UNLINK", "EXISTS":
		last = -1
	case "MSET":
		last, step = -1, 2
	case "GET", "SET", "STRLEN", "TYPE", "JSON.SET", "JSON.GET":
	default:
		first, last, step = 0, 0, 0
	}
	c.w.Array(6)
	c.w.BulkString(strings.ToLower(name))
	c.w.Int(int64(spec.arity))
	c.w.Array(len(flags))
	for _, f := range flags {
		c.w.Simple(f)
	}
	c.w.Int(first)
	c.w.Int(last)
	c.w.Int(step)
}

// info is INFO [section ...]: server, clients and keyspace (the RDDs
// this caller may read, with their key counts).
func (c *conn) info(args [][]byte) reply {
	want := map[string]bool{}
	for _, a := range args[1:] {
		want[strings.ToLower(string(a))] = true
	}
	all := len(want) == 0 || want["all"] || want["default"] || want["everything"]
	var b strings.Builder
	if all || want["server"] {
		fmt.Fprintf(&b, "# Server\r\nredis_version:7.2.0\r\nsrdd_version:%s\r\nredis_mode:standalone\r\nnode_id:%s\r\ntcp_port:%s\r\n\r\n",
			c.s.cfg.Version, c.s.cfg.NodeID, portOf(c.nc.LocalAddr().String()))
	}
	if all || want["clients"] {
		fmt.Fprintf(&b, "# Clients\r\nconnected_clients:%d\r\nmaxclients:%d\r\n\r\n", c.s.nconns.Load(), c.s.cfg.MaxConns)
	}
	if all || want["keyspace"] {
		rdds, err := c.listRDDs()
		if err != nil {
			return fail(err)
		}
		b.WriteString("# Keyspace\r\n")
		for _, r := range rdds {
			keys := int64(0)
			if r.Keys != nil {
				keys = *r.Keys
			}
			fmt.Fprintf(&b, "%s:keys=%d,expires=0,avg_ttl=0,mode=%s\r\n", r.Name, keys, r.Mode)
		}
	}
	c.w.Verbatim(b.String())
	return done
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// dbsize is the keys of every shared RDD this caller may read.
func (c *conn) dbsize(_ [][]byte) reply {
	rdds, err := c.listRDDs()
	if err != nil {
		return fail(err)
	}
	var n int64
	for _, r := range rdds {
		if r.Keys != nil {
			n += *r.Keys
		}
	}
	c.w.Int(n)
	return done
}
