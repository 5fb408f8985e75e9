// Command kube-apiserver is the upstream Kubernetes API server, built from the
// Go module proxy because no prebuilt binary can be downloaded here. It is the
// same program as k8s.io/kubernetes/cmd/kube-apiserver: only this wrapper and
// go.mod live in our tree.
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
