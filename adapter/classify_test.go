package adapter

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/eapache/go-resiliency/breaker"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestClassify_kafkaErrorCodes covers every row of the fact table in
// shared/notes/kafka-errors.md, then the other codes Classify maps, then codes it
// does not know.
func TestClassify_kafkaErrorCodes(t *testing.T) {
	tests := []struct {
		name string
		code int16 // the Kafka protocol code, checked against the sarama constant
		err  sarama.KError
		want Class
	}{
		// The rows of the notes' table, in its order.
		{"UNKNOWN_SERVER_ERROR is retried within the budget, no client knows more", -1, sarama.ErrUnknown, Retriable},
		{"CORRUPT_MESSAGE is retried, damage in transit", 2, sarama.ErrInvalidMessage, Retriable},
		{"UNKNOWN_TOPIC_OR_PARTITION is retried while metadata catches up", 3, sarama.ErrUnknownTopicOrPartition, Retriable},
		{"LEADER_NOT_AVAILABLE is retried during an election", 5, sarama.ErrLeaderNotAvailable, Retriable},
		{"NOT_LEADER_OR_FOLLOWER is retried after leadership moved", 6, sarama.ErrNotLeaderForPartition, Retriable},
		{"REQUEST_TIMED_OUT is retried, accepting a duplicate", 7, sarama.ErrRequestTimedOut, Retriable},
		{"BROKER_NOT_AVAILABLE is retried", 8, sarama.ErrBrokerNotAvailable, Retriable},
		{"REPLICA_NOT_AVAILABLE is retried", 9, sarama.ErrReplicaNotAvailable, Retriable},
		{"MESSAGE_TOO_LARGE is permanent for the message", 10, sarama.ErrMessageSizeTooLarge, Permanent},
		{"NETWORK_EXCEPTION is retried", 13, sarama.ErrNetworkException, Retriable},
		{"INVALID_TOPIC_EXCEPTION is permanent for the message", 17, sarama.ErrInvalidTopic, Permanent},
		{"RECORD_LIST_TOO_LARGE is permanent for the message", 18, sarama.ErrMessageSetSizeTooLarge, Permanent},
		{"NOT_ENOUGH_REPLICAS is retried until replicas return", 19, sarama.ErrNotEnoughReplicas, Retriable},
		{"NOT_ENOUGH_REPLICAS_AFTER_APPEND is retried, accepting a duplicate", 20, sarama.ErrNotEnoughReplicasAfterAppend, Retriable},
		{"INVALID_REQUIRED_ACKS is fatal, a configuration bug", 21, sarama.ErrInvalidRequiredAcks, Fatal},
		{"TOPIC_AUTHORIZATION_FAILED is fatal until an ACL is granted", 29, sarama.ErrTopicAuthorizationFailed, Fatal},
		{"CLUSTER_AUTHORIZATION_FAILED is fatal", 31, sarama.ErrClusterAuthorizationFailed, Fatal},
		{"INVALID_TIMESTAMP is permanent for the message", 32, sarama.ErrInvalidTimestamp, Permanent},
		{"UNSUPPORTED_VERSION is fatal, the configured version is wrong", 35, sarama.ErrUnsupportedVersion, Fatal},
		{"UNSUPPORTED_FOR_MESSAGE_FORMAT is permanent for the message", 43, sarama.ErrUnsupportedForMessageFormat, Permanent},
		{"OUT_OF_ORDER_SEQUENCE_NUMBER is retried, sarama has bumped the epoch", 45, sarama.ErrOutOfOrderSequenceNumber, Retriable},
		{"DUPLICATE_SEQUENCE_NUMBER is retried if it ever escapes sarama", 46, sarama.ErrDuplicateSequenceNumber, Retriable},
		{"INVALID_PRODUCER_EPOCH is retried, sarama has bumped the epoch", 47, sarama.ErrInvalidProducerEpoch, Retriable},
		{"TRANSACTIONAL_ID_AUTHORIZATION_FAILED is fatal", 53, sarama.ErrTransactionalIDAuthorizationFailed, Fatal},
		{"KAFKA_STORAGE_ERROR is retried on another replica", 56, sarama.ErrKafkaStorageError, Retriable},
		{"SASL_AUTHENTICATION_FAILED is fatal until credentials are fixed", 58, sarama.ErrSASLAuthenticationFailed, Fatal},
		{"UNKNOWN_PRODUCER_ID is retried, sarama has bumped the epoch", 59, sarama.ErrUnknownProducerID, Retriable},
		{"INVALID_RECORD is permanent for the message", 87, sarama.ErrInvalidRecord, Permanent},
		{"PRODUCER_FENCED is fatal", 90, sarama.ErrProducerFenced, Fatal},

		// Other transition codes that the Java client retries.
		{"COORDINATOR_LOAD_IN_PROGRESS is retried", 14, sarama.ErrOffsetsLoadInProgress, Retriable},
		{"COORDINATOR_NOT_AVAILABLE is retried", 15, sarama.ErrConsumerCoordinatorNotAvailable, Retriable},
		{"NOT_COORDINATOR is retried", 16, sarama.ErrNotCoordinatorForConsumer, Retriable},
		{"NOT_CONTROLLER is retried", 41, sarama.ErrNotController, Retriable},
		{"CONCURRENT_TRANSACTIONS is retried", 51, sarama.ErrConcurrentTransactions, Retriable},
		{"FETCH_SESSION_ID_NOT_FOUND is retried", 70, sarama.ErrFetchSessionIDNotFound, Retriable},
		{"INVALID_FETCH_SESSION_EPOCH is retried", 71, sarama.ErrInvalidFetchSessionEpoch, Retriable},
		{"LISTENER_NOT_FOUND is retried", 72, sarama.ErrListenerNotFound, Retriable},
		{"FENCED_LEADER_EPOCH is retried", 74, sarama.ErrFencedLeaderEpoch, Retriable},
		{"UNKNOWN_LEADER_EPOCH is retried", 75, sarama.ErrUnknownLeaderEpoch, Retriable},
		{"OFFSET_NOT_AVAILABLE is retried", 78, sarama.ErrOffsetNotAvailable, Retriable},
		{"PREFERRED_LEADER_NOT_AVAILABLE is retried", 80, sarama.ErrPreferredLeaderNotAvailable, Retriable},
		{"ELIGIBLE_LEADERS_NOT_AVAILABLE is retried", 83, sarama.ErrEligibleLeadersNotAvailable, Retriable},
		{"ELECTION_NOT_NEEDED is retried", 84, sarama.ErrElectionNotNeeded, Retriable},
		{"UNSTABLE_OFFSET_COMMIT is retried", 88, sarama.ErrUnstableOffsetCommit, Retriable},
		{"THROTTLING_QUOTA_EXCEEDED is retried after a backoff", 89, sarama.ErrThrottlingQuotaExceeded, Retriable},

		// Other authorization, SASL and configuration codes.
		{"GROUP_AUTHORIZATION_FAILED is fatal", 30, sarama.ErrGroupAuthorizationFailed, Fatal},
		{"UNSUPPORTED_SASL_MECHANISM is fatal", 33, sarama.ErrUnsupportedSASLMechanism, Fatal},
		{"ILLEGAL_SASL_STATE is fatal", 34, sarama.ErrIllegalSASLState, Fatal},
		{"INVALID_REQUEST is fatal", 42, sarama.ErrInvalidRequest, Fatal},
		{"INVALID_TXN_STATE is fatal", 48, sarama.ErrInvalidTxnState, Fatal},
		{"INVALID_PRODUCER_ID_MAPPING is fatal", 49, sarama.ErrInvalidProducerIDMapping, Fatal},
		{"INVALID_TRANSACTION_TIMEOUT is fatal", 50, sarama.ErrInvalidTransactionTimeout, Fatal},
		{"DELEGATION_TOKEN_AUTH_DISABLED is fatal", 61, sarama.ErrDelegationTokenAuthDisabled, Fatal},
		{"DELEGATION_TOKEN_NOT_FOUND is fatal", 62, sarama.ErrDelegationTokenNotFound, Fatal},
		{"DELEGATION_TOKEN_OWNER_MISMATCH is fatal", 63, sarama.ErrDelegationTokenOwnerMismatch, Fatal},
		{"DELEGATION_TOKEN_REQUEST_NOT_ALLOWED is fatal", 64, sarama.ErrDelegationTokenRequestNotAllowed, Fatal},
		{"DELEGATION_TOKEN_AUTHORIZATION_FAILED is fatal", 65, sarama.ErrDelegationTokenAuthorizationFailed, Fatal},
		{"DELEGATION_TOKEN_EXPIRED is fatal", 66, sarama.ErrDelegationTokenExpired, Fatal},
		{"UNSUPPORTED_COMPRESSION_TYPE is fatal", 76, sarama.ErrUnsupportedCompressionType, Fatal},

		// Codes with no row fall back to Retriable.
		{"OFFSET_OUT_OF_RANGE, a consumer code, falls back to retriable", 1, sarama.ErrOffsetOutOfRange, Retriable},
		{"REBALANCE_IN_PROGRESS, a group code, falls back to retriable", 27, sarama.ErrRebalanceInProgress, Retriable},
		{"a code newer than sarama falls back to retriable", 999, sarama.KError(999), Retriable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if int16(tc.err) != tc.code {
				t.Fatalf("sarama constant %v has code %d, the table says %d", tc.err, int16(tc.err), tc.code)
			}
			if got := Classify(tc.err); got != tc.want {
				t.Errorf("Classify(%d) = %v, want %v", tc.code, got, tc.want)
			}
			// The same code behind the shapes a caller sees: wrapped by watermill-kafka,
			// inside a sarama ProducerError, and in a batch.
			shapes := map[string]error{
				"wrapped with %w":          fmt.Errorf("cannot produce message 1: %w", tc.err),
				"wrapped like pkg/errors":  pkgErrorsWrap(tc.err, "cannot produce message 1"),
				"inside a *ProducerError":  &sarama.ProducerError{Msg: &sarama.ProducerMessage{Topic: "t"}, Err: tc.err},
				"inside ProducerErrors":    sarama.ProducerErrors{{Msg: &sarama.ProducerMessage{Topic: "t"}, Err: tc.err}},
				"wrapped by sarama.Wrap":   sarama.Wrap(tc.err, errors.New("the broker's message")),
				"joined with a nil error":  errors.Join(nil, tc.err),
				"wrapped twice (%w of %w)": fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", tc.err)),
			}
			for shape, err := range shapes {
				if got := Classify(err); got != tc.want {
					t.Errorf("%s: Classify = %v, want %v", shape, got, tc.want)
				}
			}

			// The same code from franz-go (KafkaPublisher), in the shapes it produces.
			ke, ok := kerr.ErrorForCode(tc.code).(*kerr.Error)
			if !ok || ke.Code != tc.code {
				if tc.code == 999 {
					ke = &kerr.Error{Message: "UNKNOWN_999", Code: 999}
				} else {
					t.Fatalf("kerr has no error for code %d", tc.code)
				}
			}
			kshapes := map[string]error{
				"bare *kerr.Error":                  ke,
				"as franz-go wraps a too large one": fmt.Errorf("%w (uncompressed_bytes=%d, compressed_bytes=%d)", ke, 10, 5),
				"as KafkaPublisher reports it":      fmt.Errorf("adapter: kafka: publish message u to %q: %w", "t", brokerError(ke)),
				"in a BatchError":                   &BatchError{Topic: "t", Errors: []error{nil, brokerError(ke)}},
			}
			for shape, err := range kshapes {
				if got := Classify(err); got != tc.want {
					t.Errorf("franz-go, %s: Classify = %v, want %v", shape, got, tc.want)
				}
			}
			if !errors.Is(brokerError(ke), tc.err) || !errors.Is(brokerError(ke), ke) {
				t.Errorf("brokerError(%v) does not match both sarama's %v and kerr's", ke, tc.err)
			}
			// Held back behind another record: retriable whatever the cause.
			if got := Classify(fmt.Errorf("publish: %w", &heldBackError{cause: brokerError(ke)})); got != Retriable {
				t.Errorf("held back behind %v: Classify = %v, want retriable", ke, got)
			}
		})
	}
}

// TestClassify_franzGoClientErrors covers the errors franz-go's client gives a
// produce callback besides broker codes.
func TestClassify_franzGoClientErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Class
	}{
		{kgo.ErrRecordTimeout, Retriable},
		{kgo.ErrRecordRetries, Retriable},
		{kgo.ErrMaxBuffered, Retriable},
		{kgo.ErrAborting, Retriable},
		{kgo.ErrClientClosed, Fatal},
		{&kgo.ErrFirstReadEOF{}, Retriable},
		{fmt.Errorf("unable to dial: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), Retriable},
		{&heldBackError{cause: kgo.ErrClientClosed}, Retriable},
	} {
		for _, err := range []error{tc.err, fmt.Errorf("adapter: kafka: publish message u to \"t\": %w", tc.err)} {
			if got := Classify(err); got != tc.want {
				t.Errorf("Classify(%v) = %v, want %v", err, got, tc.want)
			}
		}
	}
}

func TestClassify_errorShapes(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	pipe := &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}
	readTimeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	sasl := sarama.Wrap(sarama.ErrSASLAuthenticationFailed, errors.New("Authentication failed: Invalid username or password"))
	pe := func(err error) *sarama.ProducerError {
		return &sarama.ProducerError{Msg: &sarama.ProducerMessage{Topic: "t"}, Err: err}
	}
	tooLarge := sarama.ConfigurationError(fmt.Sprintf("Attempt to produce message larger than configured Producer.MaxMessageBytes: %d > %d", 2000, 1000))

	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil is called retriable, though callers never ask", nil, Retriable},
		{"an unknown error is retried within the budget", errors.New("something odd"), Retriable},
		{"an unknown error wrapped twice is retried", fmt.Errorf("a: %w", fmt.Errorf("b: %w", errors.New("odd"))), Retriable},

		// Our sentinel and watermill-kafka's text.
		{"ErrClosed is fatal", ErrClosed, Fatal},
		{"ErrClosed wrapped is fatal", fmt.Errorf("publish: %w", ErrClosed), Fatal},
		{"ErrNilMessage is permanent for that entry", fmt.Errorf("message 2: %w", ErrNilMessage), Permanent},
		{"watermill-kafka's publisher closed is fatal", errors.New("publisher closed"), Fatal},
		{"watermill-kafka's publisher closed wrapped is fatal", fmt.Errorf("outbox: %w", errors.New("publisher closed")), Fatal},
		{"a text that merely contains publisher closed is not fatal", errors.New("the publisher closed its connection"), Retriable},
		{"watermill-kafka's marshal failure is permanent", pkgErrorsWrap(errors.New("missing header"), "cannot marshal message 0f1e"), Permanent},

		// Context errors.
		{"context.Canceled is canceled", context.Canceled, Canceled},
		{"context.DeadlineExceeded is canceled", context.DeadlineExceeded, Canceled},
		{"a wrapped context.Canceled is canceled", fmt.Errorf("send: %w", context.Canceled), Canceled},
		{"a wrapped context.DeadlineExceeded is canceled", pkgErrorsWrap(context.DeadlineExceeded, "wait"), Canceled},
		{"cancellation beats retriable noise in one tree", errors.Join(io.EOF, context.Canceled), Canceled},
		{"a permanent failure beats cancellation", errors.Join(context.Canceled, sarama.ErrMessageSizeTooLarge), Permanent},
		{"a fatal failure beats cancellation", errors.Join(context.DeadlineExceeded, sarama.ErrSASLAuthenticationFailed), Fatal},
		{"an i/o deadline is a network timeout, not the caller's context", readTimeout, Retriable},

		// sarama shapes.
		{"a ProducerError value is unwrapped", sarama.ProducerError{Msg: &sarama.ProducerMessage{}, Err: sarama.ErrInvalidRecord}, Permanent},
		{"a nil *ProducerError does not panic", (*sarama.ProducerError)(nil), Retriable},
		{"ProducerErrors with a nil entry does not panic", sarama.ProducerErrors{nil, pe(sarama.ErrMessageSizeTooLarge)}, Permanent},
		{"an empty ProducerErrors is retriable", sarama.ProducerErrors{}, Retriable},
		{"ProducerErrors of retriable errors is retriable", sarama.ProducerErrors{pe(sarama.ErrNotLeaderForPartition), pe(io.EOF)}, Retriable},
		{"ProducerErrors with one too-large message is permanent", sarama.ProducerErrors{pe(sarama.ErrNotLeaderForPartition), pe(sarama.ErrMessageSizeTooLarge)}, Permanent},
		{"ProducerErrors with an authorization failure is fatal, whatever the order", sarama.ProducerErrors{pe(sarama.ErrMessageSizeTooLarge), pe(sarama.ErrTopicAuthorizationFailed), pe(sarama.ErrNotLeaderForPartition)}, Fatal},
		{"ProducerErrors with a canceled and a retriable message is canceled", sarama.ProducerErrors{pe(sarama.ErrNotLeaderForPartition), pe(context.Canceled)}, Canceled},
		{"ProducerErrors wrapped with %w is still walked", fmt.Errorf("send: %w", sarama.ProducerErrors{pe(sarama.ErrInvalidTimestamp)}), Permanent},
		{"the client-side too-large ConfigurationError is permanent", tooLarge, Permanent},
		{"the too-large ConfigurationError from a batch is permanent", sarama.ProducerErrors{pe(tooLarge)}, Permanent},
		{"another ConfigurationError is fatal", sarama.ConfigurationError("Producing headers requires Kafka at least v0.11"), Fatal},
		{"a PacketEncodingError is permanent", sarama.PacketEncodingError{Info: "string too long"}, Permanent},
		{"a PacketDecodingError is retried", sarama.PacketDecodingError{Info: "CRC didn't match"}, Retriable},
		{"ErrOutOfBrokers wrapping a refused dial is retried", sarama.Wrap(sarama.ErrOutOfBrokers, refused), Retriable},
		{"a SASL failure inside ErrOutOfBrokers is fatal", sarama.Wrap(sarama.ErrOutOfBrokers, refused, sasl), Fatal},
		{"a SASL failure joined with a dial error is fatal", errors.Join(refused, sarama.ErrSASLAuthenticationFailed), Fatal},
		{"a dial error joined after a SASL failure is fatal", errors.Join(sasl, refused), Fatal},
		{"ErrShuttingDown is fatal", sarama.ErrShuttingDown, Fatal},
		{"ErrClosedClient is fatal", sarama.ErrClosedClient, Fatal},
		{"ErrTransactionNotReady is fatal", sarama.ErrTransactionNotReady, Fatal},
		{"ErrInvalidPartition is permanent", sarama.ErrInvalidPartition, Permanent},
		{"ErrNotConnected is retried", sarama.ErrNotConnected, Retriable},
		{"ErrIncompleteResponse is retried", sarama.ErrIncompleteResponse, Retriable},
		{"ErrInsufficientData is retried", sarama.ErrInsufficientData, Retriable},
		{"ErrProducerRetryBufferOverflow is retried", sarama.ErrProducerRetryBufferOverflow, Retriable},
		{"the circuit breaker being open is retried", breaker.ErrBreakerOpen, Retriable},
		{"the circuit breaker wrapped like watermill-kafka is retried", pkgErrorsWrap(breaker.ErrBreakerOpen, "cannot produce message 1"), Retriable},

		// Network errors.
		{"a refused dial is retried", refused, Retriable},
		{"a reset connection is retried", reset, Retriable},
		{"a broken pipe is retried", pipe, Retriable},
		{"a bare ECONNRESET errno is retried", syscall.ECONNRESET, Retriable},
		{"io.EOF is retried", io.EOF, Retriable},
		{"io.ErrUnexpectedEOF is retried", io.ErrUnexpectedEOF, Retriable},
		{"a closed network connection is retried", &net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}, Retriable},

		// TLS configuration.
		{"an unknown certificate authority is fatal", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, Fatal},
		{"an x509 hostname mismatch is fatal", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "kafka"}, Fatal},
		{"an expired certificate is fatal", x509.CertificateInvalidError{Reason: x509.Expired}, Fatal},
		{"TLS spoken to a plaintext port is fatal", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, Fatal},
		{"a TLS alert from the broker is fatal", &net.OpError{Op: "remote error", Err: tls.AlertError(42)}, Fatal},
		{"an x509 error inside ErrOutOfBrokers is fatal", sarama.Wrap(sarama.ErrOutOfBrokers, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), Fatal},

		// Wrapping forms.
		{"a pkg/errors wrap without Unwrap is followed through Cause", causeOnly{sarama.ErrInvalidTopic}, Permanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.want {
				t.Errorf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestClassify_realNetworkErrors classifies errors produced by the net package itself.
func TestClassify_realNetworkErrors(t *testing.T) {
	addr := closedPort(t)

	t.Run("dialling a closed port is retriable", func(t *testing.T) {
		_, err := net.Dial("tcp", addr)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial error %v is not ECONNREFUSED", err)
		}
		if got := Classify(err); got != Retriable {
			t.Errorf("Classify(%v) = %v, want retriable", err, got)
		}
	})

	t.Run("a dial timeout is retriable although it matches context.DeadlineExceeded", func(t *testing.T) {
		d := net.Dialer{Deadline: time.Now().Add(-time.Second)}
		_, err := d.Dial("tcp", addr)
		var ne net.Error
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("dial error %v is not the net timeout that matches context.DeadlineExceeded", err)
		}
		if got := Classify(err); got != Retriable {
			t.Errorf("Classify(%v) = %v, want retriable", err, got)
		}
	})

	t.Run("a dial canceled by the caller's context is canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var d net.Dialer
		_, err := d.DialContext(ctx, "tcp", addr)
		if !errors.Is(err, context.Canceled) || err == context.Canceled {
			t.Fatalf("dial error %v is not net's wrapped cancellation", err)
		}
		if got := Classify(err); got != Canceled {
			t.Errorf("Classify(%v) = %v, want canceled", err, got)
		}
	})
}

// TestClassify_saramaAgainstFakeBroker classifies the errors sarama really returns,
// against the in-process broker kfake.
func TestClassify_saramaAgainstFakeBroker(t *testing.T) {
	t.Run("a message over Producer.MaxMessageBytes is permanent", func(t *testing.T) {
		c := newFakeCluster(t)
		cfg := testSaramaConfig()
		cfg.Producer.MaxMessageBytes = 100
		p := newSyncProducer(t, c.ListenAddrs(), cfg)
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "t", Value: sarama.ByteEncoder(make([]byte, 1000))})
		var ce sarama.ConfigurationError
		if !errors.As(err, &ce) {
			t.Fatalf("SendMessage error %v (%T) is not a ConfigurationError", err, err)
		}
		if got := Classify(err); got != Permanent {
			t.Errorf("Classify(%v) = %v, want permanent", err, got)
		}
	})

	for _, tc := range []struct {
		name string
		code sarama.KError
		want Class
	}{
		{"a produce refused by topic authorization is fatal", sarama.ErrTopicAuthorizationFailed, Fatal},
		{"a produce refused as too large by the broker is permanent", sarama.ErrMessageSizeTooLarge, Permanent},
		{"a produce refused for lack of replicas is retriable", sarama.ErrNotEnoughReplicas, Retriable},
		{"a produce refused with an unknown server error is retriable", sarama.ErrUnknown, Retriable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCluster(t)
			c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				return produceErrorResponse(req.(*kmsg.ProduceRequest), int16(tc.code)), nil, true
			})
			p := newSyncProducer(t, c.ListenAddrs(), testSaramaConfig())
			_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "t", Value: sarama.StringEncoder("v")})
			if !errors.Is(err, tc.code) {
				t.Fatalf("SendMessage error %v is not %v", err, tc.code)
			}
			if got := Classify(err); got != tc.want {
				t.Errorf("Classify(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}

	t.Run("no broker reachable is retriable", func(t *testing.T) {
		_, err := sarama.NewSyncProducer([]string{closedPort(t)}, testSaramaConfig())
		if !errors.Is(err, sarama.ErrOutOfBrokers) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("NewSyncProducer error %v is not ErrOutOfBrokers wrapping ECONNREFUSED", err)
		}
		if got := Classify(err); got != Retriable {
			t.Errorf("Classify(%v) = %v, want retriable", err, got)
		}
	})

	for _, tc := range []struct {
		name    string
		message *string
	}{
		{"a SASL failure with the broker's message is fatal", ptr("Authentication failed: Invalid username or password")},
		{"a SASL failure without a message is fatal", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", "admin"))
			c.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
				resp.ErrorCode = int16(sarama.ErrSASLAuthenticationFailed)
				resp.ErrorMessage = tc.message
				return resp, nil, true
			})
			cfg := testSaramaConfig()
			cfg.Net.SASL.Enable = true
			cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
			cfg.Net.SASL.Version = sarama.SASLHandshakeV1
			cfg.Net.SASL.User, cfg.Net.SASL.Password = "admin", "wrong"
			_, err := sarama.NewSyncProducer(c.ListenAddrs(), cfg)
			if !errors.Is(err, sarama.ErrSASLAuthenticationFailed) {
				t.Fatalf("NewSyncProducer error %v is not a SASL failure", err)
			}
			t.Logf("shape: %T %v; inside ErrOutOfBrokers: %v", err, err, errors.Is(err, sarama.ErrOutOfBrokers))
			if got := Classify(err); got != Fatal {
				t.Errorf("Classify(%v) = %v, want fatal", err, got)
			}
		})
	}

	t.Run("a broker certificate from an unknown authority is fatal", func(t *testing.T) {
		c := newFakeCluster(t, kfake.TLS(selfSignedServerTLS(t)))
		cfg := testSaramaConfig()
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
		_, err := sarama.NewSyncProducer(c.ListenAddrs(), cfg)
		var ua x509.UnknownAuthorityError
		if !errors.As(err, &ua) {
			t.Fatalf("NewSyncProducer error %v is not an unknown-authority error", err)
		}
		if got := Classify(err); got != Fatal {
			t.Errorf("Classify(%v) = %v, want fatal", err, got)
		}
	})
}

// TestClassify_doesNotAllocateForCommonErrors keeps the hot path allocation-free.
func TestClassify_doesNotAllocateForCommonErrors(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for name, err := range map[string]error{
		"a bare KError":                     sarama.ErrNotLeaderForPartition,
		"a fatal KError wrapped with %w":    fmt.Errorf("x: %w", sarama.ErrTopicAuthorizationFailed),
		"a reset connection":                reset,
		"io.EOF wrapped like pkg/errors":    pkgErrorsWrap(io.EOF, "cannot produce message 1"),
		"ProducerErrors":                    sarama.ProducerErrors{{Err: sarama.ErrMessageSizeTooLarge}, {Err: io.EOF}},
		"the breaker":                       breaker.ErrBreakerOpen,
		"a canceled context":                fmt.Errorf("x: %w", context.Canceled),
		"ErrOutOfBrokers with a dial error": sarama.Wrap(sarama.ErrOutOfBrokers, reset),
	} {
		if n := testing.AllocsPerRun(100, func() { _ = Classify(err) }); n != 0 {
			t.Errorf("Classify(%s) allocates %v times", name, n)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	err := fmt.Errorf("cannot produce message 1: %w", sarama.ErrNotLeaderForPartition)
	b.ReportAllocs()
	for b.Loop() {
		_ = Classify(err)
	}
}

// pkgErrorsWrap builds the shape github.com/pkg/errors.Wrapf returns (withStack around
// withMessage, both with Cause and Unwrap), which watermill-kafka uses. pkg/errors is
// not a requirement in go.mod, so the test builds the shape instead of importing it.
func pkgErrorsWrap(cause error, msg string) error {
	return &pkgWithStack{&pkgWithMessage{cause: cause, msg: msg}}
}

type pkgWithMessage struct {
	cause error
	msg   string
}

func (w *pkgWithMessage) Error() string { return w.msg + ": " + w.cause.Error() }
func (w *pkgWithMessage) Cause() error  { return w.cause }
func (w *pkgWithMessage) Unwrap() error { return w.cause }

type pkgWithStack struct{ error }

func (w *pkgWithStack) Cause() error  { return w.error }
func (w *pkgWithStack) Unwrap() error { return w.error }

// causeOnly is the shape of pkg/errors before v0.9: Cause but no Unwrap.
type causeOnly struct{ cause error }

func (c causeOnly) Error() string { return "wrapped: " + c.cause.Error() }
func (c causeOnly) Cause() error  { return c.cause }

func ptr[T any](v T) *T { return &v }

// closedPort returns a local address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func newFakeCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "t")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// testSaramaConfig fails fast: no internal retries, short timeouts.
func testSaramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "classify-test"
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Net.ReadTimeout = 5 * time.Second
	cfg.Net.WriteTimeout = 5 * time.Second
	cfg.Metadata.Retry.Max = 0
	cfg.Metadata.Retry.Backoff = 10 * time.Millisecond
	cfg.Producer.Retry.Max = 0
	cfg.Producer.Return.Successes = true
	return cfg
}

func newSyncProducer(t *testing.T, addrs []string, cfg *sarama.Config) sarama.SyncProducer {
	t.Helper()
	p, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// produceErrorResponse answers every partition of req with code.
func produceErrorResponse(req *kmsg.ProduceRequest, code int16) *kmsg.ProduceResponse {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			sp.BaseOffset = -1
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// selfSignedServerTLS returns a server TLS config with a fresh self-signed certificate
// for 127.0.0.1, which no client trusts.
func selfSignedServerTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kfake"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}
