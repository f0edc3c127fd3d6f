// Command aifleet-kwok runs the KWOK controller (sigs.k8s.io/kwok) against
// aifleet's local e2e API server. It is the upstream cmd/kwok main, built
// from the Go module rather than downloaded as a release binary (this
// machine's only network is the package registries).
//
// KWOK plays the kubelet for nodes annotated kwok.x-k8s.io/node=fake: it
// keeps them Ready (heartbeats + leases) and walks their pods through the
// Stages in ../kwok-stages/ (Pending -> Running/Ready with a pod IP, Job
// pods -> Succeeded, deleted pods -> gone).
package main

import (
	"os"

	"github.com/spf13/pflag"

	"sigs.k8s.io/kwok/pkg/config"
	"sigs.k8s.io/kwok/pkg/kwok/cmd"
	"sigs.k8s.io/kwok/pkg/log"
	"sigs.k8s.io/kwok/pkg/utils/signals"
)

func main() {
	// Same wiring as upstream cmd/kwok: global flags (--config, -v) are
	// parsed first, then the controller command gets the rest.
	flagset := pflag.NewFlagSet("global", pflag.ContinueOnError)
	flagset.ParseErrorsAllowlist.UnknownFlags = true
	flagset.Usage = func() {}

	ctx := signals.SetupSignalContext()
	ctx, logger := log.InitFlags(ctx, flagset)

	ctx, err := config.InitFlags(ctx, flagset)
	if err != nil {
		_, _ = os.Stderr.Write([]byte(flagset.FlagUsages()))
		logger.Error("Init config flags", "err", err)
		os.Exit(1)
	}

	command := cmd.NewCommand(ctx)
	command.PersistentFlags().AddFlagSet(flagset)
	if err := command.ExecuteContext(ctx); err != nil {
		logger.Error("Execute exit", "err", err)
		os.Exit(1)
	}
}
