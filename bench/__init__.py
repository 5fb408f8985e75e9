"""leasegate's reproducible benchmark (issue 7): ``make bench`` or ``python -m bench.run``.

Everything measured here is real: a local etcd + kube-apiserver
(tools.localcluster), the webhook served by gunicorn over TLS exactly as the
chart runs it, wrk and an open-loop load generator on loopback. See
bench/README.md for the method and bench/RESULTS.md for recorded figures.
"""
