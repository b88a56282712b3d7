module mtls-mesh/bench/goserver

go 1.19
