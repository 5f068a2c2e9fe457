package main

// The seal line: {"seal": {...}}, a search export's last line since aiaudit's search
// service seals its exports. It holds the export's closing record (an access record of
// action search.export.seal, in the log) with its tlog-proof against a checkpoint signed
// after it, and the consistency proof from the event lines' checkpoint to that one. The
// record counts the event lines the export wrote and holds the SHA-256 of each line's
// sequence (8 bytes, big-endian) and leaf hash, in order: recomputed here from the lines,
// they must match it. Since 2026-12-06 the record also holds access.scope_sha256,
// SHA-256 of the seal's scope_salt and the scope line's bytes (without its line ending):
// under a seal that verifies the scope is proven, and an edited one is a problem; a seal
// written before holds no digest, and the scope stays the exporter's claim, said so.
// Checked in aiaudit's order and words.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	tlog "github.com/transparency-dev/formats/log"
	tproof "github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

const sealAction = "search.export.seal"

// sealKeys are a seal's fields; scope_salt is absent in seals written before closing
// records held access.scope_sha256.
var sealKeys = []string{"canonical", "consistency_proof", "event_id", "log_id", "scope_salt", "sequence", "tlog_proof"}

const scopeSaltBytes = 32

// unsealedScope is what the scope's last line adds under a seal whose record holds no
// scope digest.
const unsealedScope = "; its closing record commits to no scope line (a seal written before closing records " +
	"held access.scope_sha256): the scope's filter, query, requester and time are the exporter's claim, " +
	"printed as edited"

var (
	decimalText = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)
	hex64       = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// seals is the bundle's seal line and the running count and digest of its event lines.
type seals struct {
	first      int // the line of the first seal line (0: none)
	members    []member
	eventAfter bool // an event line follows the first seal line
	count      uint64
	digest     hash.Hash
	sealed     string // the scope's last line once the seal verified
	// scopeProven: the verified seal's closing record commits to the scope line.
	scopeProven bool
	// empty: the per-log lines said instead of a log's summary once the seal proved that
	// the export wrote no event line (sealedEmpty); nil otherwise.
	empty []string
}

func newSeals() *seals { return &seals{digest: sha256.New()} }

// read keeps the first seal line; a second is a problem.
func (s *seals) read(members []member, number int) string {
	if s.first != 0 {
		return fmt.Sprintf("a second seal line (line %d holds the first): an export writes one, so "+
			"bundles were joined", s.first)
	}
	s.first, s.members = number, members
	return ""
}

// add counts an event line read whole into the digest.
func (s *seals) add(sequence uint64, canonical []byte) {
	s.count++
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], sequence)
	s.digest.Write(seq[:])
	s.digest.Write(rfc6962.DefaultHasher.HashLeaf(canonical))
}

type sealLine struct {
	logID, eventID string
	sequence       uint64
	canonical      []byte
	proof          tproof.TLogProof
	consistency    [][]byte
	scopeSalt      []byte // nil: none (a seal written before records held scope_sha256)
}

// field is a member's value if it has the JSON kind wanted, in aiaudit's words.
func sealField(members []member, name, kind string) (json.RawMessage, error) {
	for _, m := range members {
		if m.name == name {
			if got := jsonKind(m.value); got != kind {
				return nil, fmt.Errorf("field %s must be %s, not %s", pyRepr(name), kind, got)
			}
			return m.value, nil
		}
	}
	return nil, fmt.Errorf("field %s is missing", pyRepr(name))
}

func sealString(members []member, name string) (string, error) {
	raw, err := sealField(members, name, "a string")
	if err != nil {
		return "", err
	}
	var s string
	err = json.Unmarshal(raw, &s)
	return s, err
}

func parseSeal(members []member) (sealLine, error) {
	var line sealLine
	for _, m := range members {
		if loneSurrogate(m.raw) || loneSurrogate(m.value) {
			return line, errors.New("the line escapes a lone surrogate (read elsewhere as U+FFFD)")
		}
	}
	var unknown []string
	for _, m := range members {
		if m.name != "seal" {
			unknown = append(unknown, m.name)
		}
	}
	if len(unknown) > 0 {
		return line, fmt.Errorf("unknown field %s: a seal line holds only 'seal'", pyRepr(slices.Min(unknown)))
	}
	value, err := sealField(members, "seal", "an object")
	if err != nil {
		return line, err
	}
	inner, err := objectMembers(value)
	if err != nil {
		return line, err
	}
	unknown = nil
	for _, m := range inner {
		if !slices.Contains(sealKeys, m.name) {
			unknown = append(unknown, m.name)
		}
	}
	if len(unknown) > 0 {
		return line, fmt.Errorf("unknown field %s: a seal holds canonical, consistency_proof, event_id, "+
			"log_id, scope_salt, sequence, tlog_proof", pyRepr(slices.Min(unknown)))
	}
	raw, err := sealField(inner, "sequence", "an integer")
	if err != nil {
		return line, err
	}
	n, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil || n > maxInt63 || strconv.FormatUint(n, 10) != string(raw) {
		return line, fmt.Errorf("field 'sequence' must be from 0 to %d, not %s", maxInt63, raw)
	}
	line.sequence = n
	if raw, err = sealField(inner, "consistency_proof", "an array"); err != nil {
		return line, err
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return line, err
	}
	for _, item := range items {
		var text string
		if jsonKind(item) != "a string" || json.Unmarshal(item, &text) != nil {
			return line, errors.New("field 'consistency_proof' must hold strings")
		}
		h, err := decodeBase64(text)
		if err != nil {
			return line, errors.New("field 'consistency_proof' is not in canonical base64")
		}
		line.consistency = append(line.consistency, h)
	}
	if slices.ContainsFunc(inner, func(m member) bool { return m.name == "scope_salt" }) {
		text, err := sealString(inner, "scope_salt")
		if err != nil {
			return line, err
		}
		if line.scopeSalt, err = decodeBase64(text); err != nil {
			return line, errors.New("field 'scope_salt' is not in canonical base64")
		}
		if len(line.scopeSalt) != scopeSaltBytes {
			return line, fmt.Errorf("field 'scope_salt' must be %d bytes", scopeSaltBytes)
		}
	}
	if line.logID, err = sealString(inner, "log_id"); err != nil {
		return line, err
	}
	if line.eventID, err = sealString(inner, "event_id"); err != nil {
		return line, err
	}
	text, err := sealString(inner, "canonical")
	if err != nil {
		return line, err
	}
	if line.canonical, err = decodeBase64(text); err != nil {
		return line, errors.New("field 'canonical' is not in canonical base64")
	}
	if text, err = sealString(inner, "tlog_proof"); err != nil {
		return line, err
	}
	if err := line.proof.Unmarshal([]byte(text)); err != nil {
		return line, fmt.Errorf("tlog-proof: %v", err)
	}
	if err := proofSpelling(text, line.proof); err != nil {
		return line, fmt.Errorf("tlog-proof: %v", err)
	}
	return line, nil
}

// closing is what the closing record says, read from its proven canonical bytes.
type closing struct {
	exportRecord, digest          string
	count, upToSequence, treeSize uint64
	scopeDigest                   *string // access.scope_sha256; nil in a record written before it
}

// readClosing reads the record as strictly as aiaudit does (UTF-8, one JSON object and
// nothing after it, each name once, no -0, no lone surrogate): encoding/json alone kept
// the last of a name given twice and ignored what followed the object, where aiaudit
// refuses both, so one record read as two.
func readClosing(canonical []byte, line sealLine) (closing, error) {
	var c closing
	var event map[string]any
	notObject := errors.New("the record's canonical bytes are not a JSON object")
	if !utf8.Valid(canonical) || !readsWhole(canonical) || loneSurrogate(canonical) {
		return c, notObject
	}
	decoder := json.NewDecoder(bytes.NewReader(canonical))
	if decoder.Decode(&event) != nil || event == nil {
		return c, notObject
	}
	if _, err := decoder.Token(); err != io.EOF {
		return c, notObject
	}
	if event["eventId"] != line.eventID || event["tenantId"] != line.logID {
		return c, errors.New("canonical eventId/tenantId are not the seal's event_id/log_id")
	}
	attributes, _ := event["attributes"].(map[string]any)
	attribute := func(name, kind string) (string, bool) {
		slot, _ := attributes["access."+name].(map[string]any)
		value, ok := slot[kind].(string)
		return value, ok
	}
	if action, _ := attribute("action", "stringValue"); event["eventType"] != "EVENT_TYPE_AUDIT_ACCESS" || action != sealAction {
		return c, fmt.Errorf("the record is not a search export's closing record (an access record of action %s)",
			pyRepr(sealAction))
	}
	for _, f := range []struct {
		name string
		into *uint64
	}{{"count", &c.count}, {"tree_size", &c.treeSize}, {"up_to_sequence", &c.upToSequence}} {
		text, ok := attribute(f.name, "intValue")
		n, err := strconv.ParseUint(text, 10, 64)
		if !ok || !decimalText.MatchString(text) || err != nil || n > maxInt63 {
			return c, fmt.Errorf("the record's access.%s is not a count", f.name)
		}
		*f.into = n
	}
	var ok1, ok2 bool
	c.exportRecord, ok1 = attribute("export_record", "stringValue")
	c.digest, ok2 = attribute("lines_sha256", "stringValue")
	if !ok1 || !ok2 || !hex64.MatchString(c.digest) {
		return c, errors.New("the record names no export record and digest of its lines")
	}
	if _, present := attributes["access.scope_sha256"]; present {
		digest, ok := attribute("scope_sha256", "stringValue")
		if !ok || !hex64.MatchString(digest) {
			return c, errors.New("the record's access.scope_sha256 is not a SHA-256 in hex")
		}
		c.scopeDigest = &digest
	}
	return c, nil
}

// scopeSealed names why the closing record does not commit to this scope line, byte for
// byte, or "". Until 2026-12-06 nothing did: a sealed export of a narrow filter, its
// scope edited to claim a wider one, verified "complete" printing the edited scope.
func scopeSealed(c closing, line sealLine, sc *scope, scopeText []byte) string {
	switch {
	case c.scopeDigest == nil && line.scopeSalt != nil:
		return "the seal holds a scope_salt and its closing record commits to no scope line (no access.scope_sha256)"
	case c.scopeDigest == nil:
		return ""
	case line.scopeSalt == nil:
		return "the closing record commits to the scope line (access.scope_sha256) and the seal holds no " +
			"scope_salt to check it with"
	}
	sum := sha256.Sum256(append(slices.Clone(line.scopeSalt), scopeText...))
	if hex.EncodeToString(sum[:]) != *c.scopeDigest {
		return fmt.Sprintf("the scope line (line %d) is not the one the closing record commits to "+
			"(access.scope_sha256): the scope was edited", sc.line)
	}
	return ""
}

// check names what of the seal does not hold; none sets sealed.
// scopeText is the scope line's bytes, without its line ending; logs, if given: a seal of
// any other log is a problem, as a line of one is.
func (s *seals) check(sc *scope, scopeText []byte, summaries map[string]*logSummary, keys []note.Verifier, prefix string, logs []string) []string {
	if s.first == 0 {
		return nil
	}
	var whats []string
	if s.eventAfter {
		whats = append(whats, "a seal must be the bundle's last line (the export writes it after its last event)")
	}
	line, err := parseSeal(s.members)
	if err != nil {
		return append(whats, "malformed seal: "+err.Error())
	}
	if len(logs) > 0 && !slices.Contains(logs, line.logID) { // as a line's: an empty bundle too
		asked := slices.Sorted(slices.Values(logs))
		return append(whats, fmt.Sprintf("log %s is not one of the logs to verify (%s)",
			pyRepr(line.logID), strings.Join(asked, ", ")))
	}
	p := line.proof
	if p.Index != line.sequence {
		return append(whats, fmt.Sprintf("proof index %d is not the record's sequence %d", p.Index, line.sequence))
	}
	cp, err := opened{}.open(string(p.Checkpoint), prefix, line.logID, keys)
	var wrong originError
	if errors.As(err, &wrong) {
		return append(whats, err.Error())
	} else if err != nil { // in words of ours: the note libraries word it differently
		return append(whats, "checkpoint: the seal's checkpoint does not verify with the trusted keys")
	}
	hashes := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		hashes[i] = p.Hashes[i][:]
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(line.canonical)
	if proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, cp.Size, leaf, hashes, cp.Hash) != nil {
		return append(whats, "inclusion proof: the record is not in the log under the seal's checkpoint")
	}
	c, err := readClosing(line.canonical, line)
	if err != nil {
		return append(whats, err.Error())
	}
	if sc == nil {
		return append(whats, "a seal closes the export its scope line names, and the bundle has none")
	}
	if sc.action != searchExport {
		return append(whats, fmt.Sprintf("a seal closes a search export, and the scope is of %s", sc.action))
	}
	if line.logID != sc.logID {
		return append(whats, fmt.Sprintf("the seal's log %s is not the scope's log %s (line %d)",
			pyRepr(line.logID), pyRepr(sc.logID), sc.line))
	}
	if c.exportRecord != sc.strings["access_record"] {
		return append(whats, fmt.Sprintf("the seal closes the export of access record %s, not the scope's %s "+
			"(line %d): a seal of another export", pyRepr(c.exportRecord), pyRepr(sc.strings["access_record"]), sc.line))
	}
	for _, f := range []struct {
		name        string
		said, claim uint64
	}{{"up_to_sequence", c.upToSequence, sc.ints["up_to_sequence"]}, {"tree_size", c.treeSize, sc.ints["tree_size"]}} {
		if f.said != f.claim {
			whats = append(whats, fmt.Sprintf("the closing record's %s %d is not the scope's %d (line %d)",
				f.name, f.said, f.claim, sc.line))
		}
	}
	if what := scopeSealed(c, line, sc, scopeText); what != "" {
		whats = append(whats, what)
	}
	if first, ok := summaries[line.logID]; ok && first.cp != nil {
		if first.cp.Size == 0 || proof.VerifyConsistency(rfc6962.DefaultHasher, first.cp.Size, cp.Size, line.consistency, first.cp.Hash, cp.Hash) != nil {
			whats = append(whats, fmt.Sprintf("consistency proof: the seal's checkpoint (size %d) does not extend "+
				"the lines' (size %d)", cp.Size, first.cp.Size))
		}
	}
	switch {
	case s.count < c.count:
		whats = append(whats, fmt.Sprintf("the closing record counts %d event line(s) and the bundle holds %d: "+
			"%d missing (a line removed)", c.count, s.count, c.count-s.count))
	case s.count > c.count:
		whats = append(whats, fmt.Sprintf("the closing record counts %d event line(s) and the bundle holds %d: "+
			"%d not written by the export (a line added)", c.count, s.count, s.count-c.count))
	case hex.EncodeToString(s.digest.Sum(nil)) != c.digest:
		whats = append(whats, "the event lines are not those the closing record's digest commits to: a line "+
			"replaced, or the lines reordered")
	}
	if len(whats) == 0 && c.count == 0 && c.scopeDigest != nil {
		var signers []string
		for _, k := range keys {
			if _, _, _, err := tlog.ParseCheckpoint(p.Checkpoint, cp.Origin, k); err == nil {
				signers = append(signers, keyName(k))
			}
		}
		s.sealed, s.empty = sealedEmpty(line, c, cp, signers)
		s.scopeProven = true
	} else if len(whats) == 0 {
		s.sealed = fmt.Sprintf("scope: complete: the lines are every event the export wrote, in its order "+
			"(%d event(s), sealed by its closing record %s at sequence %d, proven under checkpoint size %d)",
			c.count, pyRepr(line.eventID), line.sequence, cp.Size)
		s.scopeProven = c.scopeDigest != nil
		if !s.scopeProven {
			s.sealed += unsealedScope
		}
	}
	return whats
}

// sealedEmpty is the scope's last line and the per-log lines of a sealed export that
// matched no event, in aiaudit's words. Its bundle is the scope line and the seal: until
// 2026-12-06 it failed as "the bundle holds no events" though its proven closing record
// (count 0, committing to the scope) says the search wrote none. No event line means no
// checkpoint of the scope's size in the bundle: the seal's consistency proof from it is
// not checked, and nothing rests on it (it ties the lines' checkpoint to the seal's, and
// there are no lines); the seal's checkpoint is printed in place of the lines'.
func sealedEmpty(line sealLine, c closing, cp *tlog.Checkpoint, signers []string) (string, []string) {
	lines := []string{
		fmt.Sprintf("log %s: checkpoint %s size %d root %s signed by %s (the seal's: the bundle holds no event line)",
			line.logID, cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(cp.Hash), strings.Join(signers, ", ")),
		fmt.Sprintf("log %s: 0 event(s); the seal's consistency proof from the scope's checkpoint size %d is not "+
			"checked (no line of the bundle holds that checkpoint, and no line needs it)", line.logID, c.treeSize),
	}
	sealed := fmt.Sprintf("scope: complete: the export matched no event before sequence %d (sealed by its "+
		"closing record %s at sequence %d, proven under checkpoint size %d)",
		c.upToSequence, pyRepr(line.eventID), line.sequence, cp.Size)
	return sealed, lines
}
