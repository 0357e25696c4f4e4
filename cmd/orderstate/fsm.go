package main

import (
	"context"
	"fmt"
	"io"

	"github.com/orderstate/orderstate/statemachine"
)

func runFSM(_ context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("fsm", "fsm", stderr)
	if err := parseNoArgs(fs, args, env); err != nil {
		return err
	}
	_, err := fmt.Fprint(stdout, statemachine.Mermaid())
	return err
}
