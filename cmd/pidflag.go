package cmd

import (
	"errors"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// guardPIDFlags makes every command's --pid refuse a value that names no
// process, when the flag is parsed: 0 would otherwise read as "no --pid
// given" (explain then shows its bundled example) and a negative one as
// a process that does not exist. The commands keep their own flags; this
// wraps each one's value.
func guardPIDFlags(root *cobra.Command) {
	for _, c := range root.Commands() {
		if f := c.Flags().Lookup("pid"); f != nil {
			f.Value = pidValue{f.Value}
		}
	}
}

// pidValue is an int flag's value that must be a positive process id.
type pidValue struct{ pflag.Value }

func (v pidValue) Set(s string) error {
	if n, err := strconv.Atoi(s); err == nil && n <= 0 {
		return errors.New("a process id is a positive number (ps -e lists them)")
	}
	return v.Value.Set(s)
}
