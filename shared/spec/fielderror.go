package spec

import "fmt"

// FieldError is a fault of one field. Validate names the definition's
// fields ("memory", "healthcheck.interval", ConstraintsField); a reader of
// flags or of a file names them its own way (a flag, a Compose key path)
// from Field, not from the text.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// fieldErr is a FieldError of field with a formatted message.
func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Errors lists the faults an error holds, each on its own: the errors a
// join (Validate's) holds, at any depth, or err alone. Nil: none.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, Errors(e)...)
	}
	return out
}
