package sessions

import "fmt"

// SubmitSettings applies the node's policy for client Spark settings
// (sparkconf.go) to a spark-submit run, such as a Livy batch: the same
// rules as a session's, the named fields (driverMemory, jars, ...)
// turned into their settings first. It also checks the name and the
// view and modify users as for a session. Kind is ignored.
func (m *Manager) SubmitSettings(req CreateRequest) (map[string]string, error) {
	req.Kind = "pyspark"
	spec, err := req.spec(&m.cfg.Policy)
	if err != nil {
		return nil, err
	}
	return spec.conf, nil
}

// CheckFile checks one path or URI a client names (a batch's file)
// against the node's file roots, as jars and pyFiles are checked, and
// returns its canonical form.
func (m *Manager) CheckFile(field, uri string) (string, error) {
	if m.cfg.Policy.Files == nil {
		return "", invalid("%s: this node takes no client files", field)
	}
	c, err := m.cfg.Policy.Files.URI(uri)
	if err != nil {
		return "", fmt.Errorf("cannot use %s: %w", field, err)
	}
	return c, nil
}
