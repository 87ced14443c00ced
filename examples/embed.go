// Package examples embeds the example tollgate.yaml that `tollgate demo` and `tollgate dev` apply.
package examples

import _ "embed"

// TollgateYAML is examples/tollgate.yaml.
//
//go:embed tollgate.yaml
var TollgateYAML []byte
