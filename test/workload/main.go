// Command workload is the simulator's stateful test workload: a counter in
// memory, memory ballast of a configurable size, a file written into its own
// filesystem at first start, and an HTTP endpoint that reports all of it, so
// that a test can tell whether a migration kept the container's state.
//
// Settings (environment): BALLAST_MB (default 16), PORT (8080), BIRTH_FILE
// (/var/lib/workload/birth), MPTCP=1 to listen with multipath TCP (which CRIU
// cannot checkpoint), EXTRAS to hold what servers hold (see extras.go), in
// the directory of BIRTH_FILE, LOG_EVERY (a Go duration) to also write
// "tick N" to stdout at that interval, N counting from 1 (what a test of
// docker fleet logs reads across migrations).
//
// The same binary is the tests' client: "workload get URL" prints one answer;
// "workload poll URL INTERVAL_MS" polls over one kept-alive connection until
// SIGTERM and then prints a summary (longest gap, connections dialled, whether
// the counter ever went back); "workload dial HOST:PORT INTERVAL_MS" opens a
// new connection every interval until SIGTERM and then prints how many were
// refused; "workload calls URL INTERVAL_MS" makes each call on a connection
// of its own (so each resolves the name again) until SIGTERM and then
// prints how many failed and which versions answered.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// State is what GET / returns.
type State struct {
	Hostname      string    `json:"hostname"`
	PID           int       `json:"pid"`
	Started       time.Time `json:"started"`
	Counter       uint64    `json:"counter"`
	Requests      uint64    `json:"requests"`
	BallastMB     int       `json:"ballastMB"`
	BallastSHA256 string    `json:"ballastSHA256"`
	// BallastOK is set on ?verify=1: the ballast still hashes to BallastSHA256.
	BallastOK *bool  `json:"ballastOK,omitempty"`
	Birth     string `json:"birth"`
	// UID is the user the workload runs as; Extras the state of EXTRAS.
	UID    int               `json:"uid"`
	Extras map[string]string `json:"extras,omitempty"`
	// Version is $VERSION, for updates to show which definition answers.
	Version string `json:"version,omitempty"`
}

var (
	counter, requests atomic.Uint64
	ballast           []uint64
	ballastSum        string
)

func main() {
	if len(os.Args) > 1 {
		client(os.Args[1:])
		return
	}
	mb := envInt("BALLAST_MB", 16)
	port := envInt("PORT", 8080)
	birthFile := env("BIRTH_FILE", "/var/lib/workload/birth")

	birth, err := readOrWriteBirth(birthFile)
	if err != nil {
		log.Fatalf("birth file: %v", err)
	}
	fillBallast(mb, birth)
	ballastSum = hashBallast()
	ex := startExtras(os.Getenv("EXTRAS"), filepath.Dir(birthFile), birth)

	go func() {
		for range time.Tick(10 * time.Millisecond) {
			counter.Add(1)
		}
	}()
	if b := os.Getenv("BURN"); b != "" {
		// A busy container for a while (rebalance by load).
		d, err := time.ParseDuration(b)
		if err != nil || d <= 0 {
			log.Fatalf("BURN=%q: not a positive duration", b)
		}
		go burn(d)
	}

	host, _ := os.Hostname()
	started := time.Now().UTC()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s := State{
			Hostname: host, PID: os.Getpid(), Started: started,
			Counter: counter.Load(), Requests: requests.Add(1),
			BallastMB: mb, BallastSHA256: ballastSum, Birth: birth,
			UID: os.Getuid(), Extras: ex.state(), Version: os.Getenv("VERSION"),
		}
		if r.URL.Query().Get("verify") == "1" {
			ok := hashBallast() == ballastSum
			s.BallastOK = &ok
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	})

	var lc net.ListenConfig
	lc.SetMultipathTCP(os.Getenv("MPTCP") == "1")
	ln, err := lc.Listen(context.Background(), "tcp", ":"+strconv.Itoa(port))
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("workload: %d MB ballast, listening on :%d", mb, port)
	if every := os.Getenv("LOG_EVERY"); every != "" {
		d, err := time.ParseDuration(every)
		if err != nil || d <= 0 {
			log.Fatalf("LOG_EVERY=%q: not a positive duration", every)
		}
		go logTicks(d)
	}
	srv := &http.Server{Handler: mux}
	// docker stop ends it gracefully: what it serves is answered first (as
	// a real server does, and a rolling update counts on).
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// logTicks writes a numbered line to stdout every d (the startup line
// above goes to stderr, as the log package's do).
func logTicks(d time.Duration) {
	out := log.New(os.Stdout, "", log.LstdFlags|log.Lmicroseconds)
	for i := 1; ; i++ {
		time.Sleep(d)
		out.Printf("tick %d", i)
	}
}

func readOrWriteBirth(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return string(b), nil
	}
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	s := hex.EncodeToString(tok[:]) + " " + time.Now().UTC().Format(time.RFC3339Nano)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return s, os.WriteFile(path, []byte(s), 0o644)
}

// fillBallast writes pseudo-random words (xorshift, seeded from the birth
// token) so that every page is touched and distinct.
func fillBallast(mb int, seed string) {
	ballast = make([]uint64, mb<<20/8)
	sum := sha256.Sum256([]byte(seed))
	x := binary.LittleEndian.Uint64(sum[:]) | 1
	for i := range ballast {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		ballast[i] = x
	}
}

func hashBallast() string {
	if len(ballast) == 0 {
		return ""
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&ballast[0])), len(ballast)*8)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	v, err := strconv.Atoi(env(k, strconv.Itoa(def)))
	if err != nil || v < 0 {
		log.Fatalf("%s: not a non-negative integer", k)
	}
	return v
}

// burn keeps one core busy for d.
func burn(d time.Duration) {
	end := time.Now().Add(d)
	for n := 0; time.Now().Before(end); n++ {
		if n%1_000_000 == 0 {
			runtime.Gosched()
		}
	}
}
