package labels

const (
	// Relay marks the fleet's relay container on the manager engine; its
	// value is a digest of the container's specification, so that init
	// recreates a relay whose build or allowed ports differ.
	Relay = Prefix + ".relay"
	// RelayBuild marks relay images with the agent build they were made from.
	RelayBuild = Prefix + ".relay.build"
)
