// A minimal Go crypto/tls mTLS server, the Go peer of docs/design.md §1 (note 004), used by
// scripts/bench-peers.sh to compare against mtls-server with the same certificates.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"os"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9444", "address to listen on")
	certFile := flag.String("cert", "", "server certificate PEM")
	keyFile := flag.String("key", "", "server key PEM")
	caFile := flag.String("ca", "", "root that signs client certificates")
	flag.Parse()

	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		log.Fatal("no certificates in -ca")
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatal(err)
	}
	cfg := &tls.Config{
		Certificates:           []tls.Certificate{cert},
		ClientAuth:             tls.RequireAndVerifyClientCert,
		ClientCAs:              pool,
		MinVersion:             tls.VersionTLS13,
		CurvePreferences:       []tls.CurveID{tls.CurveP384, tls.CurveP521},
		SessionTicketsDisabled: true,
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller := ""
		if len(r.TLS.PeerCertificates) > 0 && len(r.TLS.PeerCertificates[0].URIs) > 0 {
			caller = r.TLS.PeerCertificates[0].URIs[0].String()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "healthy", "caller": caller})
	})
	srv := &http.Server{Addr: *listen, Handler: handler, TLSConfig: cfg}
	log.Printf("go mTLS server on %s", *listen)
	log.Fatal(srv.ListenAndServeTLS("", ""))
}
