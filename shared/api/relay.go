package api

// The relay is how the CLI reaches the agents through the manager's Docker
// API alone (a docker context over ssh, or the engine's TLS port): a small
// container on the manager engine, made by init from the agent's own binary,
// in which the CLI execs `fleet-agent relay dial HOST:PORT` once per
// connection. The exec's stdin and stdout are the connection; TLS runs end
// to end between the CLI and the agent, so the relay only moves bytes.
const (
	// RelayContainer is the relay's container name on the manager engine.
	RelayContainer = "fleet-relay"
	// RelayImage is the relay's image repository; its tag is the build of
	// the CLI that made it, so that init replaces it when that changes.
	RelayImage = "docker-fleet/relay"
	// RelayBinary is the agent binary's path in the relay image.
	RelayBinary = "/fleet-agent"

	// RelayArg puts the agent binary in relay mode; RelayIdle (the
	// container's own process), RelayDial HOST:PORT and RelayMux are its
	// commands.
	RelayArg  = "relay"
	RelayIdle = "idle"
	RelayDial = "dial"
	// RelayMux carries every connection of one CLI command over one exec,
	// as yamux streams: each stream starts with "HOST:PORT\n" and is
	// answered RelayReady, or RelayRefused and the reason. An exec costs
	// the manager's engine tens of milliseconds, a stream nothing.
	RelayMux = "mux"
	// RelayMuxWindow is each side's receive window of a stream: big
	// enough that an image sent through the relay is not held back.
	RelayMuxWindow = 16 << 20

	// EnvRelayPorts lists the only TCP ports (comma-separated) the relay
	// dials: the fleet's agent ports. It is no general proxy.
	EnvRelayPorts = "FLEET_RELAY_PORTS"

	// RelayReady is the one byte `relay dial` writes on its stdout once its
	// TCP connection is open; every byte after it is the agent's. Before
	// it, a failed dial ends the exec with the reason on stderr.
	RelayReady byte = 0x06
	// RelayRefused starts a mux stream the relay could not connect; the
	// reason follows, to the stream's end.
	RelayRefused byte = 0x15
)

// The socket probe: init runs the agent's binary (in the relay's image) as
// `fleet-agent probe-socket ENGINE_ID` on an engine whose docker context
// does not say where its API socket is, in the host's network namespace
// with the host's root read-only at ProbeHostRoot; it prints the socket's
// path on the host.
const (
	ProbeArg      = "probe-socket"
	ProbeHostRoot = "/host"
)
