// Command aifleet-coredns is CoreDNS with only the plugins the local e2e
// cluster's DNS needs: cluster.local names of Services and pods from the
// Kubernetes API, no forwarding anywhere (nothing may resolve off the machine).
//
// A custom CoreDNS is a main that imports the plugins it wants and sets the
// directive order, as CoreDNS documents for builds with external plugins.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The subset of CoreDNS's own directive order (core/dnsserver/zdirectives.go)
// for the plugins above; a Corefile may only use these.
var directives = []string{
	"bind",
	"ready",
	"health",
	"errors",
	"log",
	"cache",
	"kubernetes",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
