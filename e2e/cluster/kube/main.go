// Command aifleet-kube is a multi-call binary holding a whole Kubernetes
// Kubernetes for aifleet's local e2e cluster: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler, and the node agents kubelet and
// kube-proxy, all built from the official Go modules (no Docker, no release
// tarballs).
//
// The component is chosen by the name the binary is invoked as (argv[0], so
// symlinks named after the components work) or, failing that, by the first
// argument:
//
//	aifleet-kube kube-apiserver --secure-port=6443 ...
//	aifleet-kube etcd --config-file=etcd.yaml
//	aifleet-kube cri-cleanup --endpoint=unix:///path/containerd.sock
//
// cri-cleanup stops and removes every pod sandbox of a container runtime
// through CRI, as the kubelet would, so the runtime tears down each pod's
// network (CNI DEL: veth, namespace, address) before the node goes away.
//
// One binary instead of four shares the (large) common code once, which saves
// link time and disk.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"
	_ "time/tzdata" // CronJob time zones, as in upstream kube-controller-manager

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/embed"
	"go.opentelemetry.io/otel/trace/noop"

	remote "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as upstream mains do
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream mains do
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream mains do

	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// The upstream cobra commands, exactly as the upstream mains build them.
var cobraComponents = map[string]func() *cobra.Command{
	"kube-apiserver":          apiserver.NewAPIServerCommand,
	"kube-controller-manager": controllermanager.NewControllerManagerCommand,
	"kube-scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
	"kube-proxy":              proxy.NewProxyCommand,
	"kubelet":                 func() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) },
}

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if !known(name) {
		if len(args) == 0 || !known(args[0]) {
			usage()
			os.Exit(2)
		}
		name, args = args[0], args[1:]
	}

	switch name {
	case "etcd":
		os.Exit(runEtcd(args))
	case "cri-cleanup":
		os.Exit(runCRICleanup(args))
	}
	// cobra reads os.Args[1:] when no args were set; make it look exactly
	// like the upstream binary was invoked.
	os.Args = append([]string{name}, args...)
	os.Exit(cli.Run(cobraComponents[name]()))
}

func known(name string) bool {
	_, ok := cobraComponents[name]
	return ok || name == "etcd" || name == "cri-cleanup"
}

func usage() {
	names := []string{"cri-cleanup", "etcd"}
	for n := range cobraComponents {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: %s COMPONENT [flags]\n  components: %v\n", filepath.Base(os.Args[0]), names)
}

// runEtcd starts a single-member etcd server in-process through the official
// embed package. All settings come from an etcd YAML config file (the same
// format as `etcd --config-file`), so we need no flag plumbing of our own.
func runEtcd(args []string) int {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	configFile := fs.String("config-file", "", "etcd YAML config file (required)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *configFile == "" {
		fmt.Fprintln(os.Stderr, "etcd: --config-file is required")
		return 2
	}
	cfg, err := embed.ConfigFromFile(*configFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd: reading %s: %v\n", *configFile, err)
		return 1
	}
	// etcdmain (the etcd CLI) defaults this after parsing; embed.NewConfig
	// leaves it 0, which would log every request as "expensive".
	if cfg.WarningUnaryRequestDuration == 0 {
		cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd: start: %v\n", err)
		return 1
	}
	defer e.Close()

	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintln(os.Stderr, "etcd: ready to serve client requests")
	case <-time.After(2 * time.Minute):
		e.Server.Stop()
		fmt.Fprintln(os.Stderr, "etcd: took too long to become ready")
		return 1
	}

	// Stop cleanly on SIGTERM/SIGINT so down.sh leaves a consistent data dir.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "etcd: signal received, shutting down")
		return 0
	case err := <-e.Err():
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(os.Stderr, "etcd: %v\n", err)
			return 1
		}
		return 0
	}
}

// runCRICleanup stops and removes all pod sandboxes of the runtime at
// --endpoint. Stopping a sandbox stops its containers and releases its network.
func runCRICleanup(args []string) int {
	fs := flag.NewFlagSet("cri-cleanup", flag.ContinueOnError)
	endpoint := fs.String("endpoint", "", "CRI endpoint, e.g. unix:///run/containerd/containerd.sock (required)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "cri-cleanup: --endpoint is required")
		return 2
	}
	logger := klog.Background()
	runtime, err := remote.NewRemoteRuntimeService(*endpoint, 10*time.Second, noop.NewTracerProvider(), &logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-cleanup: connect %s: %v\n", *endpoint, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	sandboxes, err := runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-cleanup: list sandboxes: %v\n", err)
		return 1
	}
	failed := 0
	for _, sb := range sandboxes {
		name := sb.GetMetadata().GetNamespace() + "/" + sb.GetMetadata().GetName()
		if err := runtime.StopPodSandbox(ctx, sb.GetId()); err != nil {
			fmt.Fprintf(os.Stderr, "cri-cleanup: stop %s: %v\n", name, err)
			failed++
			continue
		}
		if err := runtime.RemovePodSandbox(ctx, sb.GetId()); err != nil {
			fmt.Fprintf(os.Stderr, "cri-cleanup: remove %s: %v\n", name, err)
			failed++
			continue
		}
		fmt.Fprintf(os.Stderr, "cri-cleanup: removed %s\n", name)
	}
	if failed > 0 {
		return 1
	}
	return 0
}
