package adapter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/IBM/sarama"
	"github.com/eapache/go-resiliency/breaker"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrClosed is returned by Publish after Close. Classify reports it as Fatal: the
// publisher will not publish again, whatever the message.
var ErrClosed = errors.New("adapter: publisher closed")

// Texts matched where a library returns an error without a sentinel or type.
const (
	// watermill-kafka v3 returns errors.New("publisher closed") after Close.
	watermillKafkaClosed = "publisher closed"
	// watermill-kafka v3 wraps a Marshaler failure as "cannot marshal message <uuid>: ...".
	watermillKafkaMarshal = "cannot marshal message "
	// sarama fails a message larger than Producer.MaxMessageBytes client-side with a
	// ConfigurationError starting with this text (async_producer.go, dispatcher).
	saramaTooLarge = "Attempt to produce message larger than configured Producer.MaxMessageBytes"
)

// maxDepth bounds the walk of an error tree, in case an Unwrap method loops.
const maxDepth = 32

// Classify says what a publish failure means for the next attempt. It is written for
// Kafka through franz-go (KafkaPublisher: kerr codes, kgo.ErrRecordTimeout,
// ErrRecordRetries, ErrMaxBuffered, ErrClientClosed) and through sarama
// (watermill-kafka's publisher), with one table of broker error codes for both, and
// falls back to Retriable for errors it does not know, which the caller bounds with
// its time budget. ErrHeldBack is Retriable whatever failure it wraps.
//
// Classify walks the whole error tree: Unwrap() error, Unwrap() []error (errors.Join,
// sarama's out-of-brokers error), Cause() error, sarama.ProducerErrors and
// *sarama.ProducerError, and a node's own Is method (sarama wraps some broker errors
// in a type that only errors.Is can see through). When the tree holds several
// classifiable errors the most severe wins, in this order:
//
//	Fatal > Permanent > Canceled > Retriable
//
// Fatal wins because a broken producer (a SASL failure inside an out-of-brokers
// error, say) breaks every message, and hiding it behind a retriable dial error would
// retry forever. Permanent beats Canceled because the message can never succeed, even
// when the caller has also given up. Canceled beats Retriable because retriable noise
// in a tree that holds the caller's context error is a consequence of the
// cancellation, and nobody waits for a retry any more. So a batch
// (sarama.ProducerErrors) is Canceled only when nothing in it is Permanent or Fatal.
//
// Classify(nil) returns Retriable; callers classify only non-nil errors.
func Classify(err error) Class {
	if err == nil {
		// Nothing failed: there is nothing to classify. Retriable is the neutral
		// answer, documented above; callers do not ask.
		return Retriable
	}
	w := walker{}
	w.visit(err, 0)
	if w.class == Retriable && !w.known && strings.Contains(errorText(err), watermillKafkaMarshal) {
		// watermill-kafka could not marshal the message: the marshaler fails the same
		// way for the same message, so retrying is useless. Checked last and only
		// when nothing in the tree was recognised, because it costs an Error() call.
		return Permanent
	}
	return w.class
}

// errorText returns err.Error(), or "" when Error panics, as it does on a typed nil
// pointer whose method has a value receiver (a nil *sarama.ProducerError).
func errorText(err error) (s string) {
	defer func() {
		if recover() != nil {
			s = ""
		}
	}()
	return err.Error()
}

// rank orders the classes by severity for the walk; the higher rank wins.
func rank(c Class) int {
	switch c {
	case Fatal:
		return 3
	case Permanent:
		return 2
	case Canceled:
		return 1
	default:
		return 0
	}
}

// walker accumulates the most severe class found in an error tree.
type walker struct {
	class Class
	known bool // some node of the tree was recognised
}

func (w *walker) add(c Class) {
	w.known = true
	if rank(c) > rank(w.class) {
		w.class = c
	}
}

// visit classifies err and its descendants. It stops as soon as Fatal is found:
// nothing can beat it.
func (w *walker) visit(err error, depth int) {
	if err == nil || depth > maxDepth || w.class == Fatal {
		return
	}

	// sarama's producer error shapes carry the broker error inside.
	switch e := err.(type) {
	case *heldBackError:
		// The message was failed for a record before it in its partition: it is
		// fine itself, whatever the class of that record's failure.
		w.add(Retriable)
		return
	case sarama.ProducerErrors:
		// SendMessages and AsyncProducer.Close return a batch with no Unwrap: every
		// message's error counts, the most severe wins.
		for _, pe := range e {
			if pe != nil {
				w.visit(pe.Err, depth+1)
			}
		}
		return
	case *sarama.ProducerError:
		// The AsyncProducer's per-message error; its Unwrap has a value receiver, so a
		// nil pointer must not reach the generic unwrap below.
		if e != nil {
			w.visit(e.Err, depth+1)
		}
		return
	}

	c, ok := classifyNode(err)
	if ok {
		w.add(c)
		if c == Fatal {
			return
		}
	}

	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, child := range u.Unwrap() {
			w.visit(child, depth+1)
		}
	case interface{ Unwrap() error }:
		w.visit(u.Unwrap(), depth+1)
	case interface{ Cause() error }:
		// github.com/pkg/errors before v0.9 had Cause but no Unwrap.
		w.visit(u.Cause(), depth+1)
	default:
		if !ok && errorText(err) == watermillKafkaClosed {
			// watermill-kafka's Publish after Close. It has no sentinel, so only an
			// unrecognised leaf pays for the Error() call.
			w.add(Fatal)
		}
	}
}

// classifyNode classifies one node of an error tree without looking at its children
// (except through the node's own Is method). ok is false for a node it does not know.
func classifyNode(err error) (c Class, ok bool) {
	switch e := err.(type) {
	case sarama.KError:
		return kerrorClass(e)
	case *kerr.Error:
		// franz-go's broker error codes: the same table as sarama's.
		if e == nil {
			return Retriable, false
		}
		if c, ok := kerrorClass(sarama.KError(e.Code)); ok {
			return c, true
		}
		// A code with no row: franz-go's own verdict, else unknown.
		return Retriable, e.Retriable
	case sarama.ConfigurationError:
		if strings.HasPrefix(string(e), saramaTooLarge) {
			// The message is larger than Producer.MaxMessageBytes: sarama refuses it
			// before sending, and will refuse it every time.
			return Permanent, true
		}
		// Any other invalid configuration (Version too old for headers, a
		// SyncProducer without Return.Successes) breaks every message.
		return Fatal, true
	case sarama.PacketEncodingError:
		// sarama could not encode the request (a string longer than Kafka allows);
		// sarama itself fails the batch instead of retrying, since it would fail the
		// same way.
		return Permanent, true
	case sarama.PacketDecodingError:
		// A garbled or unexpected broker response: the connection is reset and a new
		// one usually reads clean; a lasting mismatch is bounded by the budget.
		return Retriable, true
	case *tls.CertificateVerificationError, x509.UnknownAuthorityError,
		x509.CertificateInvalidError, x509.HostnameError, x509.SystemRootsError,
		x509.ConstraintViolationError, x509.InsecureAlgorithmError,
		x509.UnhandledCriticalExtension:
		// The broker's certificate does not verify (unknown CA, expired, wrong host):
		// a TLS configuration problem that every connection hits until it is fixed.
		return Fatal, true
	case tls.RecordHeaderError, tls.AlertError:
		// TLS spoken to a plaintext listener, or a TLS alert: configuration, not load.
		return Fatal, true
	case *net.OpError:
		if e != nil && e.Op == "remote error" {
			// crypto/tls reports an alert received from the broker this way (bad or
			// unknown client certificate, no shared protocol version or cipher): the
			// handshake will fail the same way on every connection.
			return Fatal, true
		}
		// Dial, read or write failed (refused, reset, broken pipe, timeout): the
		// broker is restarting or the network is in trouble; reconnecting can work.
		return Retriable, true
	case syscall.Errno:
		switch e {
		case syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE,
			syscall.ECONNABORTED, syscall.ETIMEDOUT, syscall.EHOSTUNREACH,
			syscall.ENETUNREACH, syscall.ENETDOWN:
			// The connection failed or dropped: a broker restart or a network blip.
			return Retriable, true
		}
		return Retriable, false
	}

	switch err {
	case ErrClosed:
		// Our own publisher was closed: no message will be published again.
		return Fatal, true
	case ErrNilMessage:
		// A nil *message.Message was passed: that entry can never be published, the
		// other messages of the call can.
		return Permanent, true
	case ErrHeldBack:
		// Not sent so as not to overtake an earlier message of its key that failed:
		// it can go once that one is resent.
		return Retriable, true
	case context.Canceled, context.DeadlineExceeded:
		// The caller's context ended: the caller no longer waits for this message.
		return Canceled, true
	case kgo.ErrRecordTimeout, kgo.ErrRecordRetries:
		// franz-go gave up on the record after its delivery timeout or retries (and
		// failed the records behind it in the partition): the cluster did not
		// recover in time; the decorator's budget decides whether to wait longer.
		return Retriable, true
	case kgo.ErrMaxBuffered:
		// franz-go's buffer is full: back off and let it drain.
		return Retriable, true
	case kgo.ErrAborting:
		// Buffered records were aborted (transactions only): the next attempt can go.
		return Retriable, true
	case kgo.ErrClientClosed:
		// The franz-go client was closed: nothing can be sent again.
		return Fatal, true
	case sarama.ErrClosedClient:
		// The sarama client was closed under the producer: nothing can be sent again.
		return Fatal, true
	case sarama.ErrShuttingDown:
		// The producer is closing and refuses new messages; a retry meets the same.
		return Fatal, true
	case sarama.ErrTransactionNotReady, sarama.ErrNonTransactedProducer:
		// Transactional API misused (send outside a transaction, or a transaction on a
		// producer without TransactionalID): a code or configuration bug.
		return Fatal, true
	case sarama.ErrInvalidPartition:
		// The partitioner (or a manual partition) names a partition that does not
		// exist, for this message: resending it gives the same answer.
		return Permanent, true
	case sarama.ErrOutOfBrokers:
		// Every known broker failed to answer (its children, the dial errors, are
		// walked too, so a SASL failure among them still makes the tree Fatal).
		return Retriable, true
	case sarama.ErrBrokerNotFound, sarama.ErrNotConnected, sarama.ErrAlreadyConnected,
		sarama.ErrIncompleteResponse, sarama.ErrInsufficientData,
		sarama.ErrControllerNotAvailable, sarama.ErrNoTopicsToUpdateMetadata:
		// Stale metadata, a connection being (re)opened, or a short or partial
		// response: the cluster or the connection is in transition.
		return Retriable, true
	case sarama.ErrProducerRetryBufferOverflow:
		// sarama's retry buffer is full: back off and let it drain.
		return Retriable, true
	case breaker.ErrBreakerOpen:
		// sarama's per-topic or per-partition breaker opened after three failed
		// leader lookups and stays open 10 s: the cluster is in transition.
		return Retriable, true
	case io.EOF, io.ErrUnexpectedEOF, net.ErrClosed:
		// The broker closed the connection mid-request (restart, idle reaping).
		return Retriable, true
	}

	if ne, isNet := err.(net.Error); isNet && ne.Timeout() {
		// A network timeout (os.ErrDeadlineExceeded, a dial timeout). Checked before
		// the Is probe below on purpose: net's dial timeout also says
		// Is(context.DeadlineExceeded), yet it is sarama's Net.DialTimeout, not the
		// caller's context. A dial that ran out of the caller's deadline looks the
		// same; the caller's own ctx.Err() check ends its retries then.
		return Retriable, true
	}

	if is, hasIs := err.(interface{ Is(error) bool }); hasIs {
		// sarama.Wrap(sentinel, errs...) (used for ErrOutOfBrokers and for a SASL
		// failure that carries the broker's message) hides the sentinel from Unwrap
		// and errors.As: only Is finds it. So does net's "operation was canceled".
		c, ok = probe(is)
	}
	return c, ok
}

// probe asks a node's own Is method about every error Classify knows, and returns the
// most severe class among the matches.
func probe(is interface{ Is(error) bool }) (c Class, ok bool) {
	for _, p := range probes {
		if is.Is(p.err) {
			ok = true
			if rank(p.class) > rank(c) {
				c = p.class
				if c == Fatal {
					break
				}
			}
		}
	}
	return c, ok
}

type probeTarget struct {
	err   error
	class Class
}

// probes lists every sentinel and KError Classify recognises, boxed once so that
// probing does not allocate. It is filled by init because building it calls
// classifyNode, which reads it.
var probes []probeTarget

func init() { probes = buildProbes() }

func buildProbes() []probeTarget {
	ps := []probeTarget{}
	for _, e := range []error{
		ErrClosed, ErrNilMessage, ErrHeldBack, context.Canceled, context.DeadlineExceeded,
		kgo.ErrRecordTimeout, kgo.ErrRecordRetries, kgo.ErrMaxBuffered, kgo.ErrAborting, kgo.ErrClientClosed,
		sarama.ErrClosedClient, sarama.ErrShuttingDown, sarama.ErrTransactionNotReady,
		sarama.ErrNonTransactedProducer, sarama.ErrInvalidPartition, sarama.ErrOutOfBrokers,
		sarama.ErrBrokerNotFound, sarama.ErrNotConnected, sarama.ErrAlreadyConnected,
		sarama.ErrIncompleteResponse, sarama.ErrInsufficientData,
		sarama.ErrControllerNotAvailable, sarama.ErrNoTopicsToUpdateMetadata,
		sarama.ErrProducerRetryBufferOverflow, breaker.ErrBreakerOpen,
	} {
		c, _ := classifyNode(e)
		ps = append(ps, probeTarget{e, c})
	}
	// KError is an int16; the protocol's codes are far below 1024.
	for code := -1; code < 1024; code++ {
		if c, ok := kerrorClass(sarama.KError(code)); ok {
			ps = append(ps, probeTarget{sarama.KError(code), c})
		}
	}
	return ps
}

// kerrorClass maps a broker error code. ok is false for a code with no row here; the
// code then counts as an unknown error (Retriable, bounded by the budget).
//
// Retriable rows follow the codes that the Java client deems retriable
// (RetriableException), as sarama lists them in isRetriableTxnError, plus the few
// decided otherwise below, each with its reason.
func kerrorClass(k sarama.KError) (Class, bool) {
	switch k {
	// --- Retriable: the cluster is in transition.
	case sarama.ErrInvalidMessage:
		// 2 CORRUPT_MESSAGE: the CRC did not match, most likely damaged in transit;
		// Java and kerr retry it, and sarama already did Retry.Max times.
		return Retriable, true
	case sarama.ErrUnknownTopicOrPartition:
		// 3: the topic is being created or the metadata is stale; sarama refreshes it.
		return Retriable, true
	case sarama.ErrLeaderNotAvailable, sarama.ErrNotLeaderForPartition:
		// 5, 6: a leader election is under way or moved the partition.
		return Retriable, true
	case sarama.ErrRequestTimedOut:
		// 7: the broker did not get the acks in time; the write may have happened, so a
		// resend can duplicate (delivery is at-least-once).
		return Retriable, true
	case sarama.ErrBrokerNotAvailable, sarama.ErrReplicaNotAvailable:
		// 8, 9: a broker or replica is down. kerr retries both and Java retries 9;
		// Java calls 8 non-retriable but it only means "that broker is down".
		return Retriable, true
	case sarama.ErrNetworkException:
		// 13: the broker dropped the connection before answering. Java and kerr retry
		// it (librdkafka does not).
		return Retriable, true
	case sarama.ErrOffsetsLoadInProgress, sarama.ErrConsumerCoordinatorNotAvailable,
		sarama.ErrNotCoordinatorForConsumer:
		// 14 COORDINATOR_LOAD_IN_PROGRESS, 15 COORDINATOR_NOT_AVAILABLE,
		// 16 NOT_COORDINATOR: a group or transaction coordinator is moving or loading.
		return Retriable, true
	case sarama.ErrNotEnoughReplicas:
		// 19: too few in-sync replicas right now; they come back after a restart.
		return Retriable, true
	case sarama.ErrNotEnoughReplicasAfterAppend:
		// 20: written to the leader but under-replicated: a resend duplicates, which
		// at-least-once delivery accepts.
		return Retriable, true
	case sarama.ErrNotController:
		// 41 NOT_CONTROLLER: the controller moved.
		return Retriable, true
	case sarama.ErrConcurrentTransactions:
		// 51 CONCURRENT_TRANSACTIONS: the coordinator is still finishing the previous
		// transaction; sarama's transaction manager retries it.
		return Retriable, true
	case sarama.ErrKafkaStorageError:
		// 56: a log directory failed; the partition moves to another replica.
		return Retriable, true
	case sarama.ErrFetchSessionIDNotFound, sarama.ErrInvalidFetchSessionEpoch:
		// 70, 71: fetch-session bookkeeping was reset; a new session starts.
		return Retriable, true
	case sarama.ErrListenerNotFound:
		// 72: brokers are restarting with their listeners not yet all registered.
		return Retriable, true
	case sarama.ErrFencedLeaderEpoch, sarama.ErrUnknownLeaderEpoch:
		// 74, 75: our metadata's leader epoch is older or newer than the broker's.
		return Retriable, true
	case sarama.ErrOffsetNotAvailable, sarama.ErrPreferredLeaderNotAvailable,
		sarama.ErrEligibleLeadersNotAvailable, sarama.ErrElectionNotNeeded:
		// 78, 80, 83, 84: a leader election has not settled yet.
		return Retriable, true
	case sarama.ErrUnstableOffsetCommit:
		// 88: pending transactional offsets are being cleared.
		return Retriable, true
	case sarama.ErrThrottlingQuotaExceeded:
		// 89: a quota is exceeded for now; backing off is exactly what is asked for.
		return Retriable, true
	case sarama.ErrUnknown:
		// -1 UNKNOWN_SERVER_ERROR: no client retries it, but nothing says the message
		// can never succeed or that the producer is broken; it is usually a transient
		// broker-side exception. Retried, bounded by the budget, rather than dead
		// lettering a good message or stopping the publisher on a guess.
		return Retriable, true
	case sarama.ErrOutOfOrderSequenceNumber, sarama.ErrInvalidProducerEpoch,
		sarama.ErrUnknownProducerID:
		// 45, 47, 59 (idempotent producer only): the broker lost or rejected our
		// sequence state. sarama's returnErrors bumps the producer epoch and resets the
		// sequence numbers before it hands the failure back (a non-transactional
		// producer), so the next attempt starts a fresh sequence and can succeed;
		// franz-go likewise resets and continues by default (unless
		// StopProducerOnDataLossDetected), and Java does so since KIP-360. The resend
		// is a new record: at-least-once, as documented.
		return Retriable, true
	case sarama.ErrDuplicateSequenceNumber:
		// 46: the broker already has this batch. sarama reports it as a success, so it
		// should never arrive here; if it does, a resend is a harmless duplicate.
		return Retriable, true

	// --- Permanent: this message can never succeed as it is.
	case sarama.ErrMessageSizeTooLarge:
		// 10 MESSAGE_TOO_LARGE: larger than the topic's max.message.bytes.
		return Permanent, true
	case sarama.ErrInvalidTopic:
		// 17 INVALID_TOPIC_EXCEPTION: the topic name is illegal (or internal).
		return Permanent, true
	case sarama.ErrMessageSetSizeTooLarge:
		// 18 RECORD_LIST_TOO_LARGE: the batch exceeds the segment size.
		return Permanent, true
	case sarama.ErrInvalidTimestamp:
		// 32: the timestamp is outside the topic's message.timestamp.*.ms window.
		return Permanent, true
	case sarama.ErrUnsupportedForMessageFormat:
		// 43: the topic's message format cannot carry this record (headers, zstd).
		return Permanent, true
	case sarama.ErrInvalidRecord:
		// 87 INVALID_RECORD: the broker's validation rejected the record (a null key
		// on a compacted topic, a bad offset).
		return Permanent, true

	// --- Fatal: the producer or its credentials are broken for every message.
	case sarama.ErrInvalidRequiredAcks:
		// 21: RequiredAcks is not -1, 0 or 1: a configuration bug.
		return Fatal, true
	case sarama.ErrTopicAuthorizationFailed, sarama.ErrGroupAuthorizationFailed,
		sarama.ErrClusterAuthorizationFailed, sarama.ErrTransactionalIDAuthorizationFailed:
		// 29, 30, 31, 53: the principal lacks an ACL; nothing succeeds until an
		// operator grants it.
		return Fatal, true
	case sarama.ErrUnsupportedSASLMechanism, sarama.ErrIllegalSASLState,
		sarama.ErrSASLAuthenticationFailed:
		// 33, 34, 58: SASL is misconfigured or the credentials are wrong.
		return Fatal, true
	case sarama.ErrDelegationTokenAuthDisabled, sarama.ErrDelegationTokenNotFound,
		sarama.ErrDelegationTokenOwnerMismatch, sarama.ErrDelegationTokenRequestNotAllowed,
		sarama.ErrDelegationTokenAuthorizationFailed, sarama.ErrDelegationTokenExpired:
		// 61-66: delegation-token credentials are unusable until renewed or fixed.
		return Fatal, true
	case sarama.ErrUnsupportedVersion:
		// 35: sarama's Config.Version asks for an API version the broker lacks.
		return Fatal, true
	case sarama.ErrInvalidRequest:
		// 42: a malformed request for this broker (client bug or incompatible
		// configuration): every request is built the same way.
		return Fatal, true
	case sarama.ErrUnsupportedCompressionType:
		// 76: Producer.Compression is not supported at this request version: a
		// configuration bug.
		return Fatal, true
	case sarama.ErrInvalidTxnState, sarama.ErrInvalidProducerIDMapping,
		sarama.ErrInvalidTransactionTimeout:
		// 48, 49, 50: the transactional state or configuration is broken; sarama itself
		// moves a transactional producer to its fatal state on 49.
		return Fatal, true
	case sarama.ErrProducerFenced:
		// 90: another producer with our transactional id took over; this one can never
		// write again.
		return Fatal, true
	}
	return Retriable, false
}
