package agentclient

import "net/http"

// LimitConns bounds the connections open to the agent at once (0: no
// bound); further requests wait for one to be free. For channels on which a
// connection costs more than a wait (a relay of an older build makes each
// an exec).
func (c *Client) LimitConns(n int) {
	if t, ok := c.http.Transport.(*http.Transport); ok {
		t.MaxConnsPerHost = n
	}
}
