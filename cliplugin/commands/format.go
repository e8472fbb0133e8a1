package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/docker/cli/templates"
)

// formatHelp is the --format flag's help, the same for every command.
const formatHelp = `Format output: "json", or a Go template (as docker's --format)`

// writeFormatted writes v as JSON or through a Go template; table renders
// it when no format is given.
func writeFormatted(out io.Writer, format string, v any, table func(io.Writer) error) error {
	switch {
	case format == "":
		return table(out)
	case format == "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case strings.Contains(format, "{{"):
		tmpl, err := templates.Parse(format)
		if err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		if err := tmpl.Execute(out, v); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		_, err = fmt.Fprintln(out)
		return err
	default:
		return fmt.Errorf(`--format %q: use "json" or a Go template such as '{{json .}}'`, format)
	}
}
