package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// PollSummary is what "workload poll" prints when stopped.
type PollSummary struct {
	Polls       int     `json:"polls"`
	Errors      int     `json:"errors"`
	MaxGapMs    float64 `json:"maxGapMs"`
	Dials       int     `json:"dials"`
	First       uint64  `json:"firstCounter"`
	Last        uint64  `json:"lastCounter"`
	WentBack    bool    `json:"counterWentBack"`
	LastBallast string  `json:"lastBallastSHA256"`
	Hostnames   int     `json:"hostnames"`
}

func client(args []string) {
	switch {
	case len(args) == 2 && args[0] == "get":
		resp, err := http.Get(args[1])
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(os.Stdout, resp.Body)
	case len(args) == 3 && args[0] == "poll":
		ms, err := strconv.Atoi(args[2])
		if err != nil {
			log.Fatal("poll URL INTERVAL_MS")
		}
		poll(args[1], time.Duration(ms)*time.Millisecond)
	case len(args) == 3 && args[0] == "calls":
		ms, err := strconv.Atoi(args[2])
		if err != nil {
			log.Fatal("calls URL INTERVAL_MS")
		}
		calls(args[1], time.Duration(ms)*time.Millisecond)
	case len(args) == 3 && args[0] == "dial":
		ms, err := strconv.Atoi(args[2])
		if err != nil {
			log.Fatal("dial HOST:PORT INTERVAL_MS")
		}
		dial(args[1], time.Duration(ms)*time.Millisecond)
	case len(args) > 0 && (args[0] == "memcache" || args[0] == "beanstalk"):
		kvClient(args)
	default:
		log.Fatal("usage: workload | workload get URL | workload poll URL INTERVAL_MS | workload calls URL INTERVAL_MS | workload dial HOST:PORT INTERVAL_MS | workload memcache|beanstalk HOST:PORT N RATE")
	}
}

func poll(url string, every time.Duration) {
	var sum PollSummary
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	tr := &http.Transport{
		MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			sum.Dials++
			return dialer.DialContext(ctx, network, addr)
		},
	}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	lastOK := time.Time{}
	hosts := map[string]bool{}
	for {
		select {
		case <-stop:
			b, _ := json.Marshal(sum)
			fmt.Println(string(b))
			return
		case <-time.After(every):
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		resp, err := c.Do(req)
		sum.Polls++
		if err != nil {
			sum.Errors++
			continue
		}
		var st State
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			sum.Errors++
			continue
		}
		now := time.Now()
		if !lastOK.IsZero() {
			if gap := now.Sub(lastOK).Seconds() * 1000; gap > sum.MaxGapMs {
				sum.MaxGapMs = gap
			}
		}
		lastOK = now
		if sum.First == 0 {
			sum.First = st.Counter
		}
		if st.Counter < sum.Last {
			sum.WentBack = true
		}
		sum.Last = st.Counter
		sum.LastBallast = st.BallastSHA256
		hosts[st.Hostname] = true
		sum.Hostnames = len(hosts)
	}
}

// CallsSummary is what "workload calls" prints when stopped.
type CallsSummary struct {
	Calls  int `json:"calls"`
	Errors int `json:"errors"`
	// Versions counts the answers by the $VERSION of the replica.
	Versions map[string]int `json:"versions"`
	// LastErrors are the newest few failures, for the test's message.
	LastErrors []string `json:"lastErrors,omitempty"`
}

// calls calls url every interval, each time on a new connection (the
// name resolved again, as a client of a service does), until SIGTERM.
func calls(url string, every time.Duration) {
	sum := CallsSummary{Versions: map[string]int{}}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	fail := func(err error) {
		sum.Errors++
		sum.LastErrors = append(sum.LastErrors, time.Now().UTC().Format("15:04:05.000")+" "+err.Error())
		if len(sum.LastErrors) > 5 {
			sum.LastErrors = sum.LastErrors[1:]
		}
	}
	for {
		select {
		case <-stop:
			b, _ := json.Marshal(sum)
			fmt.Println(string(b))
			return
		case <-time.After(every):
		}
		sum.Calls++
		resp, err := c.Get(url)
		if err != nil {
			fail(err)
			continue
		}
		var st State
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			fail(err)
			continue
		}
		sum.Versions[st.Version]++
	}
}

// DialSummary is what "workload dial" prints when stopped.
type DialSummary struct {
	Dials    int `json:"dials"`
	OK       int `json:"ok"`
	Refused  int `json:"refused"`
	TimedOut int `json:"timedOut"`
	Other    int `json:"other"`
}

// dial opens a new connection every interval, each on its own, until
// SIGTERM. A migration must never refuse one: while the server moves, a
// connection attempt waits (its SYN is dropped and sent again) and then
// succeeds, or at worst times out; a reset means the server's address
// answered before its sockets were there.
func dial(addr string, every time.Duration) {
	var (
		sum  DialSummary
		mu   sync.Mutex
		wg   sync.WaitGroup
		tick = time.NewTicker(every)
	)
	defer tick.Stop()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	for {
		select {
		case <-stop:
			wg.Wait()
			b, _ := json.Marshal(sum)
			fmt.Println(string(b))
			return
		case <-tick.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 3*time.Second)
			mu.Lock()
			defer mu.Unlock()
			sum.Dials++
			var ne net.Error
			switch {
			case err == nil:
				sum.OK++
				c.Close()
			case errors.Is(err, syscall.ECONNREFUSED):
				sum.Refused++
			case errors.As(err, &ne) && ne.Timeout():
				sum.TimedOut++
			default:
				sum.Other++
			}
		}()
	}
}
