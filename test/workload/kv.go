package main

// Load clients for servers that Debian ships without one: memcached and
// beanstalkd. Each writes N items at RATE per second over one connection,
// timing every request, then reads every item back and checks it:
//
//	workload memcache HOST:PORT N RATE    set fleet:1..N, then get them all
//	workload beanstalk HOST:PORT N RATE   put N jobs, then reserve and delete them all
//
// A broken connection is counted, dialled again and the request retried, so
// that the summary (one JSON line, KVSummary) tells how bad it was.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"time"
)

// KVSummary is what the memcache and beanstalk clients print.
type KVSummary struct {
	Server       string  `json:"server"`
	Items        int     `json:"items"`
	Written      int     `json:"written"`
	WriteErrors  int     `json:"writeErrors"`
	Dials        int     `json:"dials"`
	MaxLatencyMs float64 `json:"maxLatencyMs"`
	Verified     int     `json:"verified"`
	Missing      int     `json:"missing"`
	Wrong        int     `json:"wrong"`
	Duplicates   int     `json:"duplicates"`
	ReadErrors   int     `json:"readErrors"`
}

// kvConn is one connection that is dialled again after an error.
type kvConn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	sum  *KVSummary
	// hello is sent after every dial (beanstalk's "use TUBE").
	hello func(*kvConn) error
}

func (k *kvConn) dial() error {
	if k.c != nil {
		return nil
	}
	c, err := net.DialTimeout("tcp", k.addr, 5*time.Second)
	if err != nil {
		return err
	}
	k.sum.Dials++
	k.c, k.r = c, bufio.NewReader(c)
	if k.hello != nil {
		if err := k.hello(k); err != nil {
			k.drop()
			return err
		}
	}
	return nil
}

func (k *kvConn) drop() {
	if k.c != nil {
		k.c.Close()
	}
	k.c, k.r = nil, nil
}

// send writes a request and reads its first reply line.
func (k *kvConn) send(req string) (string, error) {
	if err := k.c.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		return "", err
	}
	if _, err := k.c.Write([]byte(req)); err != nil {
		return "", err
	}
	return k.line()
}

func (k *kvConn) line() (string, error) {
	s, err := k.r.ReadString('\n')
	return strings.TrimRight(s, "\r\n"), err
}

func (k *kvConn) block(n int) ([]byte, error) {
	b := make([]byte, n+2)
	if _, err := io.ReadFull(k.r, b); err != nil {
		return nil, err
	}
	return b[:n], nil
}

// do runs one request with its retries and records its latency.
func (k *kvConn) do(f func(*kvConn) error, errors *int) bool {
	start := time.Now()
	defer func() {
		if ms := time.Since(start).Seconds() * 1000; ms > k.sum.MaxLatencyMs {
			k.sum.MaxLatencyMs = ms
		}
	}()
	for attempt := 0; attempt < 20; attempt++ {
		err := k.dial()
		if err == nil {
			if err = f(k); err == nil {
				return true
			}
		}
		*errors++
		log.Printf("%s: %v", k.addr, err)
		k.drop()
		time.Sleep(250 * time.Millisecond)
	}
	return false
}

// itemValue is the content of item i, checkable on its own.
func itemValue(i int) string {
	h := sha256.Sum256([]byte(strconv.Itoa(i)))
	return strconv.Itoa(i) + ":" + hex.EncodeToString(h[:])
}

func kvClient(args []string) {
	if len(args) != 4 {
		log.Fatal("usage: workload memcache|beanstalk HOST:PORT N RATE")
	}
	n, err1 := strconv.Atoi(args[2])
	rate, err2 := strconv.ParseFloat(args[3], 64)
	if err1 != nil || err2 != nil || n <= 0 || rate <= 0 {
		log.Fatal("N and RATE must be positive numbers")
	}
	sum := &KVSummary{Server: args[0], Items: n}
	k := &kvConn{addr: args[1], sum: sum}
	var put func(*kvConn, int) error
	var verify func(*kvConn, *KVSummary)
	switch args[0] {
	case "memcache":
		put, verify = memcacheSet, memcacheVerify
	case "beanstalk":
		k.hello = func(k *kvConn) error {
			return expect(k, "use fleet\r\n", "USING fleet")
		}
		put, verify = beanstalkPut, beanstalkVerify
	default:
		log.Fatal("usage: workload memcache|beanstalk HOST:PORT N RATE")
	}
	start := time.Now()
	for i := 1; i <= n; i++ {
		if d := time.Until(start.Add(time.Duration(float64(i-1) / rate * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
		if k.do(func(k *kvConn) error { return put(k, i) }, &sum.WriteErrors) {
			sum.Written++
		}
	}
	verify(k, sum)
	k.drop()
	b, _ := json.Marshal(sum)
	fmt.Println(string(b))
}

func expect(k *kvConn, req, want string) error {
	got, err := k.send(req)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%q: got %q, want %q", strings.TrimSpace(req), got, want)
	}
	return nil
}

func memcacheSet(k *kvConn, i int) error {
	v := itemValue(i)
	return expect(k, fmt.Sprintf("set fleet:%d 0 0 %d\r\n%s\r\n", i, len(v), v), "STORED")
}

// memcacheVerify gets the items back, a hundred keys a request.
func memcacheVerify(k *kvConn, sum *KVSummary) {
	for first := 1; first <= sum.Items; first += 100 {
		last := min(first+99, sum.Items)
		got := map[int]string{}
		ok := k.do(func(k *kvConn) error {
			clear(got)
			var req strings.Builder
			req.WriteString("get")
			for i := first; i <= last; i++ {
				fmt.Fprintf(&req, " fleet:%d", i)
			}
			req.WriteString("\r\n")
			line, err := k.send(req.String())
			for ; err == nil && line != "END"; line, err = k.line() {
				// VALUE <key> <flags> <bytes>
				f := strings.Fields(line)
				if len(f) != 4 || f[0] != "VALUE" {
					return fmt.Errorf("get: unexpected %q", line)
				}
				size, err := strconv.Atoi(f[3])
				if err != nil {
					return fmt.Errorf("get: %q", line)
				}
				data, err := k.block(size)
				if err != nil {
					return err
				}
				i, _ := strconv.Atoi(strings.TrimPrefix(f[1], "fleet:"))
				got[i] = string(data)
			}
			return err
		}, &sum.ReadErrors)
		if !ok {
			sum.Missing += last - first + 1
			continue
		}
		for i := first; i <= last; i++ {
			switch v, found := got[i]; {
			case !found:
				sum.Missing++
			case v != itemValue(i):
				sum.Wrong++
			default:
				sum.Verified++
			}
		}
	}
}

func beanstalkPut(k *kvConn, i int) error {
	v := itemValue(i)
	got, err := k.send(fmt.Sprintf("put 0 0 120 %d\r\n%s\r\n", len(v), v))
	if err != nil {
		return err
	}
	if !strings.HasPrefix(got, "INSERTED ") {
		return fmt.Errorf("put: %q", got)
	}
	return nil
}

// beanstalkVerify takes every job of the tube (reserve, delete) and checks
// that each item came exactly once.
func beanstalkVerify(k *kvConn, sum *KVSummary) {
	seen := map[int]int{}
	k.hello = func(k *kvConn) error {
		if err := expect(k, "watch fleet\r\n", "WATCHING 2"); err != nil {
			return err
		}
		return expect(k, "ignore default\r\n", "WATCHING 1")
	}
	// The same connection watches the tube; a new one would do so on dial.
	if k.c != nil {
		if err := k.hello(k); err != nil {
			sum.ReadErrors++
			log.Printf("%s: %v", k.addr, err)
			k.drop()
		}
	}
	for done := false; !done; {
		ok := k.do(func(k *kvConn) error {
			line, err := k.send("reserve-with-timeout 0\r\n")
			if err != nil {
				return err
			}
			if line == "TIMED_OUT" {
				done = true
				return nil
			}
			// RESERVED <id> <bytes>
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != "RESERVED" {
				return fmt.Errorf("reserve: unexpected %q", line)
			}
			size, err := strconv.Atoi(f[2])
			if err != nil {
				return fmt.Errorf("reserve: %q", line)
			}
			data, err := k.block(size)
			if err != nil {
				return err
			}
			if err := expect(k, "delete "+f[1]+"\r\n", "DELETED"); err != nil {
				return err
			}
			i, _, _ := strings.Cut(string(data), ":")
			n, _ := strconv.Atoi(i)
			if n < 1 || n > sum.Items || string(data) != itemValue(n) {
				sum.Wrong++
				return nil
			}
			seen[n]++
			return nil
		}, &sum.ReadErrors)
		if !ok {
			break
		}
	}
	for i := 1; i <= sum.Items; i++ {
		switch seen[i] {
		case 0:
			sum.Missing++
		case 1:
			sum.Verified++
		default:
			sum.Verified++
			sum.Duplicates += seen[i] - 1
		}
	}
}
