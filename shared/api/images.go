package api

// Images reach the nodes that run them without a registry: the CLI asks
// which nodes have an image (PathImages), announces it to a node that
// lacks it (PathImageExpect) and has a node that has it push it there
// (PathImageSend → PathImagePush), checked by image ID. Only an image no
// node has is pulled, with a bound (ImagesRequest.Pull).
const (
	// PathImages: which of some images the node's engine has (operator).
	PathImages = "/v1/images"
	// PathImageExpect: take this image, of this ID, from that node
	// (operator).
	PathImageExpect = "/v1/images/expect"
	// PathImageSend: push this image to that node (operator).
	PathImageSend = "/v1/images/send"
	// PathImagePush: a node's `docker save` stream of an announced image
	// (node), its ID in HeaderImageID.
	PathImagePush = "/v1/images/push"
	// HeaderImageID names the image a push carries.
	HeaderImageID = "X-Fleet-Image-ID"
)

// ImagesRequest asks which of Images the engine has; with Pull it first
// pulls those it lacks, for at most PullSeconds each.
type ImagesRequest struct {
	Images      []string `json:"images"`
	Pull        bool     `json:"pull,omitempty"`
	PullSeconds int      `json:"pullSeconds,omitempty"`
}

// ImagesResponse maps each image the engine has to its ID; PullErrors
// says why a pull failed.
type ImagesResponse struct {
	Have       map[string]string `json:"have"`
	PullErrors map[string]string `json:"pullErrors,omitempty"`
}

// ImageTransfer names an image (its reference and ID) and the other end
// of its transfer: the node it comes from (expect) or goes to (send).
type ImageTransfer struct {
	Image string `json:"image"`
	ID    string `json:"id"`
	Node  string `json:"node"`
	// Addr is the other node's agent address (HOST:PORT), for a send.
	Addr string `json:"addr,omitempty"`
}
