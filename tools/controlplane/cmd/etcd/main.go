// Command etcd is the upstream etcd server at the version k8s.io/kubernetes
// itself requires (go.mod pins it), so the API server talks to the etcd it was
// released with. Debian's etcd-server is two minor versions older.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
