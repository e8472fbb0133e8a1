//go:build servers

package servers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// loadSeconds is how long a load runs: long enough to hold a migration (a
// few seconds) in its middle.
const loadSeconds = 15

// sameOrNot says yes or no in words.
func sameOrNot(same bool, yes, no string) string {
	if same {
		return yes
	}
	return no
}

// shq quotes s for a POSIX shell.
func shq(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// retry wraps a client command in a loop that runs it until its output
// satisfies test (a shell test on "$out"), then prints the output.
func retry(cmd, test string) string {
	return `for i in $(seq 60); do out=$(` + cmd + `); if ` + test + `; then break; fi; sleep 0.5; done; echo "$out"`
}

func TestPostgreSQLUnderPgbench(t *testing.T) {
	const svc = "pg"
	// The data directory on a named volume, as PostgreSQL images have it.
	r := track(t, "PostgreSQL 15 (data on a named volume)", "pgbench -c 4 -R 100 (TPC-B)")
	ip := createServer(t, svc, []string{"servers-pgdata:/var/lib/postgresql"}, "postgres")
	psql := func(sql string) string { return "psql -h " + ip + " -U postgres -d postgres -XAtc " + shq(sql) }
	waitReady(t, "pg_isready -h "+ip+" -U postgres")
	postgres := uidIn(t, "postgres")
	runsAs(t, source, svc+".1", "postgres", postgres)
	client(t, "pgbench -i -q -s 1 -h "+ip+" -U postgres postgres")

	// Four clients at 100 transactions a second for 20 s, each on one
	// connection for the whole run (no -C); every transaction logged (-l).
	l := startLoad(t, svc, serversImage, "bash", "-c", "pgbench -h "+ip+` -U postgres -c 4 -j 2 -T 20 -R 100 -P 5 -l --log-prefix=/tmp/pgbench postgres; rc=$?
cat /tmp/pgbench.* | awk '$3 > m { m = $3 } END { print "longest transaction: " m " us" }'; exit $rc`)
	// pgbench's four connections as the server sees them: the same backends
	// (pid, start) must serve them after the move.
	backends := psql("select pid, backend_start from pg_stat_activity where application_name = 'pgbench' order by pid")
	before := client(t, retry(backends, `[ "$(echo "$out" | grep -c .)" = 4 ]`))
	assert.Assert(t, is.Len(strings.Split(before, "\n"), 4), "pgbench's backends: %q", before)

	m := migrate(t, svc)
	assert.Assert(t, l.running(t), "pgbench ended before the migration did: make its run longer")
	after := client(t, backends)
	assert.Check(t, is.Equal(after, before), "pgbench's connections are not the ones it started with")
	runsAs(t, dest, svc+".1", "postgres", postgres)

	l.wait(t)
	l.spans(t, m)
	assert.Check(t, is.Equal(l.Code, 0), "pgbench failed")
	assert.Check(t, !strings.Contains(l.Out, "aborted"), "a pgbench client lost its connection")
	processed := atoi(t, match(t, l.Out, `number of transactions actually processed: (\d+)`))
	failed := atoi(t, match(t, l.Out, `number of failed transactions: (\d+)`))
	stall := atof(t, match(t, l.Out, `longest transaction: (\d+) us`)) / 1000
	assert.Check(t, processed > 1000, "only %d transactions", processed)
	assert.Check(t, is.Equal(failed, int64(0)))
	// TPC-B: every committed transaction inserted one history row.
	rows := atoi(t, client(t, psql("select count(*) from pgbench_history")))
	assert.Check(t, is.Equal(rows, processed), "committed transactions and stored rows differ")
	r.done(t, m, fmt.Sprintf("%d tx, %d rows, %d failed, %s", processed, rows, failed, sameOrNot(after == before, "same 4 connections", "connections replaced")), stall)
}

// mariadb is a SQL client for the MariaDB server at ip.
func mariadb(ip, sql string) string {
	return "mariadb -h " + ip + " -ufleet -pfleet -N -B -e " + shq(sql)
}

func TestMariaDBUnderSysbench(t *testing.T) {
	const svc = "mariadb"
	// Native AIO off: as Debian ships it, InnoDB uses io_uring, which CRIU
	// cannot checkpoint (see the next test).
	r := track(t, "MariaDB 10.11 (innodb_use_native_aio=0)", "sysbench oltp_read_write, 2 threads, 40 tx/s")
	ip := createServer(t, svc, nil, "mariadb", "--innodb-use-native-aio=0")
	waitReady(t, mariadb(ip, "select 1"))
	mysql := uidIn(t, "mysql")
	runsAs(t, source, svc+".1", "mariadbd", mysql)
	sb := "sysbench oltp_read_write --db-driver=mysql --mysql-host=" + ip +
		" --mysql-user=fleet --mysql-password=fleet --mysql-db=sbtest --tables=2 --table-size=10000"
	client(t, sb+" prepare")
	// Every transaction adds 1 to k of one row (index_updates=1) and puts no
	// row in or out (delete_inserts=0): sum(k) grows by the committed ones.
	const sumK = "select (select sum(k) from sbtest.sbtest1) + (select sum(k) from sbtest.sbtest2), " +
		"(select count(*) from sbtest.sbtest1) + (select count(*) from sbtest.sbtest2)"
	k0 := strings.Fields(client(t, mariadb(ip, sumK)))
	assert.Assert(t, is.Len(k0, 2))

	l := startLoad(t, svc, serversImage, "bash", "-c", sb+" --threads=2 --time=20 --rate=40 --delete_inserts=0 --report-interval=5 run")
	// sysbench's two connections (their thread ids) and the server's count
	// of connections so far, in one query of one connection.
	probe := mariadb(ip, "select (select group_concat(id order by id) from information_schema.processlist "+
		"where user = 'fleet' and db = 'sbtest' and id <> connection_id()), "+
		"(select variable_value from information_schema.global_status where variable_name = 'CONNECTIONS')")
	before := strings.Fields(client(t, retry(probe, `[ "$(echo "$out" | cut -f1 | tr , '\n' | grep -c .)" = 2 ]`)))
	assert.Assert(t, is.Len(before, 2), "sysbench's connections: %q", before)

	m := migrate(t, svc)
	assert.Assert(t, l.running(t), "sysbench ended before the migration did: make its run longer")
	after := strings.Fields(client(t, probe))
	assert.Assert(t, is.Len(after, 2))
	assert.Check(t, is.Equal(after[0], before[0]), "sysbench's connections are not the ones it started with")
	assert.Check(t, is.Equal(atoi(t, after[1]), atoi(t, before[1])+1), "the server accepted connections other than this probe's")
	runsAs(t, dest, svc+".1", "mariadbd", mysql)

	l.wait(t)
	l.spans(t, m)
	assert.Check(t, is.Equal(l.Code, 0), "sysbench failed")
	tx := atoi(t, match(t, l.Out, `transactions:\s+(\d+)`))
	ignored := atoi(t, match(t, l.Out, `ignored errors:\s+(\d+)`))
	reconnects := atoi(t, match(t, l.Out, `reconnects:\s+(\d+)`))
	stall := atof(t, match(t, l.Out, `max:\s+([\d.]+)`))
	assert.Check(t, tx > 400, "only %d transactions", tx)
	assert.Check(t, is.Equal(ignored, int64(0)))
	assert.Check(t, is.Equal(reconnects, int64(0)))
	k1 := strings.Fields(client(t, mariadb(ip, sumK)))
	assert.Assert(t, is.Len(k1, 2))
	assert.Check(t, is.Equal(atoi(t, k1[0])-atoi(t, k0[0]), tx), "committed transactions and stored increments differ")
	assert.Check(t, is.Equal(k1[1], k0[1]), "rows")
	assert.Check(t, is.Equal(atoi(t, client(t, mariadb(ip, "check table sbtest.sbtest1, sbtest.sbtest2")+" | grep -vc 'status.OK' || true")), int64(0)))
	r.done(t, m, fmt.Sprintf("%d tx, sum(k) +%d, %d errors, %d reconnects", tx, atoi(t, k1[0])-atoi(t, k0[0]), ignored, reconnects), stall)
}

func TestMariaDBAsShippedRefusedBeforeFreeze(t *testing.T) {
	const svc = "mariadb-aio"
	track(t, "MariaDB 10.11 as shipped (io_uring)", "-")
	ip := createServer(t, svc, nil, "mariadb")
	waitReady(t, mariadb(ip, "select 1"))
	// As Debian ships it, InnoDB's native AIO is io_uring on this kernel.
	pid := mustDocker(t, source, "inspect", "-f", "{{.State.Pid}}", svc+".1")
	started := mustDocker(t, source, "inspect", "-f", "{{.State.StartedAt}}", svc+".1")
	fds, _ := filepath.Glob("/proc/" + pid + "/fd/*")
	uring := false
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && strings.Contains(target, "io_uring") {
			uring = true
		}
	}
	assert.Assert(t, uring, "mariadbd (pid %s) holds no io_uring: this test's premise is gone", pid)

	res := fleet(t, "migrate", svc+".1", "--to", dest)
	t.Logf("migrate:\n%s", res)
	assert.Check(t, is.Equal(res.Code, 1))
	assert.Check(t, is.Contains(res.Stderr, "io_uring"))
	assert.Check(t, is.Contains(res.Stderr, "innodb_use_native_aio"), "the remedy")
	// Before the freeze: CRIU never ran (no checkpoint began, no dump log to
	// read), nothing was rolled back, and the very process still serves.
	for _, after := range []string{"checkpointing ", "checkpointed in", "dump.log", "rollback:"} {
		assert.Check(t, !strings.Contains(res.Stderr, after), "refused only after the freeze began (%q)", after)
	}
	assert.Check(t, is.Equal(where(t, svc+".1"), source))
	assert.Check(t, is.Equal(mustDocker(t, source, "inspect", "-f", "{{.State.Pid}}", svc+".1"), pid))
	assert.Check(t, is.Equal(mustDocker(t, source, "inspect", "-f", "{{.State.StartedAt}}", svc+".1"), started))
	assert.Check(t, is.Equal(client(t, mariadb(ip, "select 1")), "1"))
	note(t, "refused: "+lastLine(res.Stderr))
}

func TestRedisUnderRedisBenchmark(t *testing.T) {
	const svc = "redis"
	r := track(t, "Redis 7.0 (appendonly)", "redis-benchmark -c 1 -k 1 RPUSH")
	ip := createServer(t, svc, nil, "redis")
	cli := "redis-cli -h " + ip
	waitReady(t, cli+" ping | grep -q PONG")
	redis := uidIn(t, "redis")
	runsAs(t, source, svc+".1", "redis-server", redis)

	// redis-benchmark has no rate limit: n is what it does in loadSeconds
	// here and now.
	rps := atof(t, match(t, client(t, "redis-benchmark -h "+ip+" -c 1 -k 1 -n 20000 -q rpush fleet:warmup element"), `([\d.]+) requests per second`))
	n := max(20000, int(rps*loadSeconds))
	// One connection (-c 1), kept alive (-k 1), n pushes onto one list.
	l := startLoad(t, svc, serversImage, "redis-benchmark", "-h", ip, "-c", "1", "-k", "1", "-n", strconv.Itoa(n), "rpush", "fleet:list", "element")
	// The benchmark's connection (its client id) and the server's count of
	// connections so far, on one connection.
	probe := `printf 'CLIENT LIST\nINFO stats\n' | ` + cli + ` | tr -d '\r' | awk '/cmd=rpush/ { sub("id=", "", $1); id = $1 } /^total_connections_received:/ { split($0, f, ":"); c = f[2] } END { print id, c }'`
	before := strings.Fields(client(t, retry(probe, `[ "$(echo $out | wc -w)" = 2 ]`)))
	assert.Assert(t, is.Len(before, 2), "redis-benchmark's connection: %q", before)

	m := migrate(t, svc)
	assert.Assert(t, l.running(t), "redis-benchmark ended before the migration did: raise n")
	after := strings.Fields(client(t, probe))
	assert.Assert(t, is.Len(after, 2), "redis-benchmark's connection after the move: %q", after)
	assert.Check(t, is.Equal(after[0], before[0]), "redis-benchmark's connection is not the one it started with")
	assert.Check(t, is.Equal(atoi(t, after[1]), atoi(t, before[1])+1), "the server accepted connections other than this probe's")
	runsAs(t, dest, svc+".1", "redis-server", redis)

	l.wait(t)
	l.spans(t, m)
	assert.Check(t, is.Equal(l.Code, 0), "redis-benchmark failed")
	assert.Check(t, !strings.Contains(strings.ToLower(l.Out), "error"), "redis-benchmark saw errors")
	done := atoi(t, match(t, l.Out, `(\d+) requests completed in`))
	stall := atof(t, match(t, l.Out, `latency summary \(msec\):\s+avg\s+min\s+p50\s+p95\s+p99\s+max\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)`))
	assert.Check(t, is.Equal(done, int64(n)), "requests completed")
	llen := atoi(t, client(t, cli+" llen fleet:list"))
	assert.Check(t, is.Equal(llen, int64(n)), "pushes made and elements stored differ")
	r.done(t, m, fmt.Sprintf("%d pushes, %d elements, %s", done, llen, sameOrNot(after[0] == before[0], "same connection", "connection replaced")), stall)
}

// stubStatus reads nginx's counters of accepted connections and requests.
func stubStatus(t *testing.T, ip string) (accepts, requests int64) {
	t.Helper()
	out := mustDocker(t, clientHost, "run", "--rm", "--network", "fleet", workloadImage, "get", "http://"+ip+"/status")
	// Active connections: 1 \n server accepts handled requests \n 5 5 9 \n …
	f := strings.Fields(match(t, out, `(?m)^\s*(\d+ \d+ \d+)\s*$`))
	return atoi(t, f[0]), atoi(t, f[2])
}

func TestNginxUnderAbKeepAlive(t *testing.T) {
	const svc = "nginx"
	r := track(t, "nginx 1.22 (workers as www-data)", "ab -k -c 2")
	ip := createServer(t, svc, nil, "nginx")
	waitReady(t, "ab -q -n 1 http://"+ip+"/")
	www := uidIn(t, "www-data")
	workers := func(h string) {
		var root, w int
		for _, p := range processes(t, h, svc+".1") {
			switch p.UID {
			case 0:
				root++
			case www:
				w++
			}
		}
		assert.Check(t, root == 1 && w == 2, "nginx on %s: want a root master and 2 workers as www-data: %+v", h, processes(t, h, svc+".1"))
	}
	workers(source)

	// ab's rate is what the machine gives: n is what it does in loadSeconds.
	rps := atof(t, match(t, client(t, "ab -k -c 2 -n 20000 http://"+ip+"/"), `Requests per second:\s+([\d.]+)`))
	n := max(20000, int(rps*loadSeconds))
	a0, r0 := stubStatus(t, ip)
	// Two connections kept alive (-k) for all n requests.
	l := startLoad(t, svc, serversImage, "ab", "-k", "-c", "2", "-n", strconv.Itoa(n), "http://"+ip+"/")
	time.Sleep(2 * time.Second)
	a1, _ := stubStatus(t, ip)
	assert.Check(t, is.Equal(a1, a0+3), "ab's 2 connections and this probe's")

	m := migrate(t, svc)
	workers(dest)
	l.wait(t)
	l.spans(t, m)
	assert.Check(t, is.Equal(l.Code, 0), "ab failed")
	complete := atoi(t, match(t, l.Out, `Complete requests:\s+(\d+)`))
	failed := atoi(t, match(t, l.Out, `Failed requests:\s+(\d+)`))
	keptAlive := atoi(t, match(t, l.Out, `Keep-Alive requests:\s+(\d+)`))
	// Connection Times (ms): Total: min mean [+/-sd] median max
	stall := atof(t, match(t, l.Out, `(?m)^Total:\s+\d+\s+\d+\s+[\d.]+\s+\d+\s+(\d+)`))
	assert.Check(t, is.Equal(complete, int64(n)))
	assert.Check(t, is.Equal(failed, int64(0)))
	assert.Check(t, !strings.Contains(l.Out, "Non-2xx"), "error responses")
	assert.Check(t, is.Equal(keptAlive, int64(n)), "requests on kept-alive connections")
	a2, r2 := stubStatus(t, ip)
	assert.Check(t, is.Equal(a2, a1+1), "ab reconnected")
	assert.Check(t, is.Equal(r2-r0, int64(n)+2), "requests served: ab's and two probes'")
	r.done(t, m, fmt.Sprintf("%d requests, %d failed, %d kept alive, %d new connections", complete, failed, keptAlive, a2-a1-1), stall)
}

// textStats reads a server's "stats" over a plain TCP connection.
func textStats(t *testing.T, ip string, port int) map[string]string {
	t.Helper()
	out := client(t, fmt.Sprintf(`exec 3<>/dev/tcp/%s/%d; printf 'stats\r\nquit\r\n' >&3; tr -d '\r' <&3`, ip, port))
	st := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		// memcached: "STAT name value"; beanstalkd: "name: value" (YAML).
		if f := strings.Fields(line); len(f) == 3 && f[0] == "STAT" {
			st[f[1]] = f[2]
		} else if k, v, ok := strings.Cut(line, ": "); ok {
			st[k] = strings.TrimSpace(v)
		}
	}
	return st
}

// kvSummary is what test/workload's memcache and beanstalk clients print.
type kvSummary struct {
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

func (l *load) kvSummary(t *testing.T) kvSummary {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(l.Stdout), "\n")
	var s kvSummary
	assert.NilError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &s), l.Out)
	return s
}

func checkKV(t *testing.T, s kvSummary, n int) {
	t.Helper()
	assert.Check(t, is.Equal(s.Written, n))
	assert.Check(t, is.Equal(s.WriteErrors, 0))
	assert.Check(t, is.Equal(s.ReadErrors, 0))
	assert.Check(t, is.Equal(s.Dials, 1), "the client reconnected")
	assert.Check(t, is.Equal(s.Verified, n))
	assert.Check(t, is.Equal(s.Missing, 0))
	assert.Check(t, is.Equal(s.Wrong, 0))
	assert.Check(t, is.Equal(s.Duplicates, 0))
}

func TestMemcachedKeepsItsKeys(t *testing.T) {
	const svc = "memcached"
	const n, rate = 6000, 400
	r := track(t, "memcached 1.6 (-u nobody)", fmt.Sprintf("test/workload memcache, %d sets/s", rate))
	ip := createServer(t, svc, nil, "memcached")
	waitReady(t, "exec 3<>/dev/tcp/"+ip+"/11211")
	runsAs(t, source, svc+".1", "memcached", uidIn(t, "nobody"))

	// n keys set at rate a second over one connection, then all read back.
	l := startLoad(t, svc, workloadImage, "memcache", ip+":11211", strconv.Itoa(n), strconv.Itoa(rate))
	time.Sleep(2 * time.Second)
	s1 := textStats(t, ip, 11211)
	m := migrate(t, svc)
	runsAs(t, dest, svc+".1", "memcached", uidIn(t, "nobody"))
	l.wait(t)
	l.spans(t, m)
	assert.Check(t, is.Equal(l.Code, 0))
	s := l.kvSummary(t)
	checkKV(t, s, n)
	s2 := textStats(t, ip, 11211)
	assert.Check(t, is.Equal(atoi(t, s2["total_connections"]), atoi(t, s1["total_connections"])+1), "connections other than this probe's")
	assert.Check(t, is.Equal(atoi(t, s2["curr_items"]), int64(n)), "items")
	assert.Check(t, is.Equal(s2["evictions"], "0"))
	r.done(t, m, fmt.Sprintf("%d keys set, %d read back intact, %d connection(s)", s.Written, s.Verified, s.Dials), s.MaxLatencyMs)
}

func TestBeanstalkdKeepsItsJobs(t *testing.T) {
	const svc = "beanstalkd"
	const n, rate = 6000, 400
	r := track(t, "beanstalkd 1.12 (binlog)", fmt.Sprintf("test/workload beanstalk, %d puts/s", rate))
	ip := createServer(t, svc, nil, "beanstalkd")
	waitReady(t, "exec 3<>/dev/tcp/"+ip+"/11300")
	beanstalkd := uidIn(t, "beanstalkd")
	runsAs(t, source, svc+".1", "beanstalkd", beanstalkd)

	// n jobs put at rate a second over one connection, then all reserved
	// and deleted, each checked.
	l := startLoad(t, svc, workloadImage, "beanstalk", ip+":11300", strconv.Itoa(n), strconv.Itoa(rate))
	time.Sleep(2 * time.Second)
	s1 := textStats(t, ip, 11300)
	m := migrate(t, svc)
	runsAs(t, dest, svc+".1", "beanstalkd", beanstalkd)
	l.wait(t)
	l.spans(t, m)
	assert.Check(t, is.Equal(l.Code, 0))
	s := l.kvSummary(t)
	checkKV(t, s, n)
	s2 := textStats(t, ip, 11300)
	assert.Check(t, is.Equal(atoi(t, s2["total-connections"]), atoi(t, s1["total-connections"])+1), "connections other than this probe's")
	assert.Check(t, is.Equal(atoi(t, s2["total-jobs"]), int64(n)), "jobs put")
	assert.Check(t, is.Equal(atoi(t, s2["cmd-delete"]), int64(n)), "jobs taken")
	assert.Check(t, is.Equal(s2["current-jobs-ready"], "0"))
	r.done(t, m, fmt.Sprintf("%d jobs put, %d taken intact, %d connection(s)", s.Written, s.Verified, s.Dials), s.MaxLatencyMs)
}

func TestMosquittoUnderPubSub(t *testing.T) {
	const svc = "mosquitto"
	const n = 1200
	r := track(t, "Mosquitto 2.0 (MQTT, persistence on)", "mosquitto_pub -l / mosquitto_sub, QoS 1")
	ip := createServer(t, svc, nil, "mosquitto")
	waitReady(t, "mosquitto_pub -h "+ip+" -t fleet/ready -m up")
	mosquitto := uidIn(t, "mosquitto")
	runsAs(t, source, svc+".1", "mosquitto", mosquitto)

	// A subscriber and a publisher, each on one connection, QoS 1; every
	// message carries its number and when it was sent. -d shows each
	// client's CONNECTs.
	script := fmt.Sprintf(`ip=%s n=%d
stdbuf -oL mosquitto_sub -h $ip -t fleet/load -q 1 -C $n -W 120 -d -F '%%U %%p' >/tmp/sub.out 2>&1 &
sub=$!
for i in $(seq 100); do grep -q SUBACK /tmp/sub.out && break; sleep 0.1; done
grep -q SUBACK /tmp/sub.out || { echo 'the subscriber never subscribed'; exit 1; }
for ((i = 1; i <= n; i++)); do echo "$i $(date +%%s.%%N)"; sleep 0.01; done |
	mosquitto_pub -h $ip -t fleet/load -q 1 -l -d >/tmp/pub.out 2>&1
pub=$?
wait $sub
sub=$?
echo "exit: pub $pub sub $sub"
echo "connects: pub $(grep -c 'sending CONNECT' /tmp/pub.out) sub $(grep -c 'sending CONNECT' /tmp/sub.out)"
grep -E '^[0-9.]+ [0-9]+ [0-9.]+$' /tmp/sub.out | awk '
	{ lat = ($1 - $3) * 1000; if (lat > max) max = lat; if ($2 == prev + 1) inorder++; if (seen[$2]++) dup++; prev = $2; count++ }
	END { printf "messages: %%d in order: %%d duplicates: %%d longest: %%.0f ms\n", count, inorder, dup, max }'
grep -v -E '^[0-9.]+ [0-9]+ [0-9.]+$|^Client .*(PUBLISH|PUBACK)' /tmp/pub.out /tmp/sub.out`, ip, n)
	l := startLoad(t, svc, serversImage, "bash", "-c", script)
	time.Sleep(3 * time.Second)
	m := migrate(t, svc)
	runsAs(t, dest, svc+".1", "mosquitto", mosquitto)
	l.wait(t)
	l.spans(t, m)
	assert.Check(t, is.Equal(l.Code, 0))
	assert.Check(t, is.Contains(l.Out, "exit: pub 0 sub 0"))
	connects := match(t, l.Out, `connects: (pub \d+ sub \d+)`)
	assert.Check(t, is.Equal(connects, "pub 1 sub 1"), "a client reconnected")
	count := atoi(t, match(t, l.Out, `messages: (\d+)`))
	inorder := atoi(t, match(t, l.Out, `in order: (\d+)`))
	dup := atoi(t, match(t, l.Out, `duplicates: (\d+)`))
	stall := atof(t, match(t, l.Out, `longest: (\d+) ms`))
	assert.Check(t, is.Equal(count, int64(n)), "messages received")
	assert.Check(t, is.Equal(inorder, int64(n)), "messages in order")
	assert.Check(t, is.Equal(dup, int64(0)))
	r.done(t, m, fmt.Sprintf("%d published, %d received, %d in order, connections: %s", n, count, inorder, connects), stall)
}
