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
	if format == "" {
		return table(out)
	}
	write, err := formatter(format, "  ")
	if err != nil {
		return err
	}
	return write(out, v)
}

// formatter is what --format asks for (not empty): JSON, indented by
// indent (one object a line when empty), or a Go template, a line a value.
func formatter(format, indent string) (func(io.Writer, any) error, error) {
	switch {
	case format == "json":
		return func(out io.Writer, v any) error {
			enc := json.NewEncoder(out)
			enc.SetIndent("", indent)
			return enc.Encode(v)
		}, nil
	case strings.Contains(format, "{{"):
		tmpl, err := templates.Parse(format)
		if err != nil {
			return nil, fmt.Errorf("--format: %w", err)
		}
		return func(out io.Writer, v any) error {
			if err := tmpl.Execute(out, v); err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			_, err := fmt.Fprintln(out)
			return err
		}, nil
	default:
		return nil, fmt.Errorf(`--format %q: use "json" or a Go template such as '{{json .}}'`, format)
	}
}
