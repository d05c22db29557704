// Package exitcode maps errors to cgrstat's exit statuses: 0 success,
// 1 failure (something measured or verified went wrong), 2 usage or
// environment error (bad input, missing privilege, a kernel without a feature).
package exitcode

import "errors"

const (
	OK      = 0
	Failure = 1
	Usage   = 2
)

type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// UsageErr marks err as a usage or environment error (exit status 2).
func UsageErr(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// IsUsage reports whether err was marked by UsageErr.
func IsUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// Of returns the exit status for err.
func Of(err error) int {
	switch {
	case err == nil:
		return OK
	case IsUsage(err):
		return Usage
	default:
		return Failure
	}
}
