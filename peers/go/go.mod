// The Go peers of fiberbench: standard library only (Debian's golang-go, built offline
// with GOPROXY=off, GOFLAGS empty, GOCACHE and GOPATH inside the build directory).
module fiberbench/peers/go

go 1.19
