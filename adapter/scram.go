package adapter

import (
	"crypto/sha256"
	"crypto/sha512"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// scramClient adapts github.com/xdg-go/scram (RFC 5802/7677 with SASLprep, the
// client sarama's own examples use) to sarama.SCRAMClient. One is created per
// connection.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

// Begin starts a conversation for user.
func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = client.NewConversation()
	return nil
}

// Step answers the server's challenge.
func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

// Done reports whether the conversation is over.
func (c *scramClient) Done() bool { return c.conv.Done() }

// defaultSCRAMClient returns the built-in SCRAM client generator for mechanism.
func defaultSCRAMClient(mechanism sarama.SASLMechanism) func() sarama.SCRAMClient {
	hash := scram.HashGeneratorFcn(sha256.New)
	if mechanism == sarama.SASLTypeSCRAMSHA512 {
		hash = sha512.New
	}
	return func() sarama.SCRAMClient { return &scramClient{hash: hash} }
}
