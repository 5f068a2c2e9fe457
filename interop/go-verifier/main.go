// Command aiaudit-go-verifier checks aiaudit's evidence with other people's code.
//
// The README promises that an auditor needs nothing of ours: the verifier key,
// a checkpoint and an event with its proof verify with any RFC 6962 / C2SP
// implementation. This program is that auditor. It is written from the README's
// description, not from our Python, and its cryptography is public libraries:
// golang.org/x/mod/sumdb/note (signed notes, Ed25519, verifier keys),
// github.com/transparency-dev/formats (C2SP tlog-checkpoint and tlog-proof) and
// github.com/transparency-dev/merkle (RFC 6962 / RFC 9162 hashing and proofs).
// Only the salted content commitments are computed here, with the standard
// library, because no public library knows aiaudit's construction.
//
// Usage:
//
//	aiaudit-go-verifier checkpoint -verifier-key KEY -origin O FILE
//	aiaudit-go-verifier bundle -verifier-key KEY -origin-prefix P [-log LOG]... FILE
//	aiaudit-go-verifier consistency -verifier-key KEY -origin O -old FILE -new FILE -proof FILE
//
// -verifier-key may be repeated (rotated keys). -log (repeatable) names the logs a
// bundle must hold: a line of any other log is a problem, as with aiaudit verify --log.
// Two checkpoints of one origin and size with different roots are a forked log, and
// two checkpoints of one log lines of different exports joined. A bundle that verifies
// is summarized per log (checkpoint and signing keys, sequences held and left out,
// events whose content is proven), in the words of aiaudit verify --bundle.
// A bundle's first line may be its scope, {"scope": {...}}: what the exporter says the
// export was made for. No signature covers it: what the lines refute of it (another log,
// a sequence outside it, another checkpoint size, a range not whole) is a problem, the
// rest is printed as the exporter's claim, as aiaudit prints it. A search export's last
// line may be its seal, {"seal": {...}}: its closing record in the log, proven, counting
// the event lines and holding their digest and the scope line's (seal.go): the scope is
// then proven the export's.
// Exit status: 0 all verified,
// 1 something did not verify (each problem printed) or a bundle held no event,
// 2 bad usage or input.
package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	tlog "github.com/transparency-dev/formats/log"
	tproof "github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

type keyList []string

func (k *keyList) String() string     { return strings.Join(*k, ",") }
func (k *keyList) Set(v string) error { *k = append(*k, v); return nil }

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	var problems int
	out := shownWriter{os.Stdout} // what the file chose, escaped (shown.go)
	switch os.Args[1] {
	case "checkpoint":
		problems, err = runCheckpoint(os.Args[2:], out)
	case "bundle":
		problems, err = runBundle(os.Args[2:], out)
	case "consistency":
		problems, err = runConsistency(os.Args[2:], out)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(shownWriter{os.Stderr}, "aiaudit-go-verifier:", err)
		os.Exit(2)
	}
	if problems > 0 {
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: aiaudit-go-verifier checkpoint -verifier-key KEY -origin O FILE\n"+
		"       aiaudit-go-verifier bundle -verifier-key KEY -origin-prefix P [-log LOG]... FILE\n"+
		"       aiaudit-go-verifier consistency -verifier-key KEY -origin O -old FILE -new FILE -proof FILE")
	os.Exit(2)
}

// verifiers parses note verifier keys (name+keyid+base64(0x01||pubkey)).
func verifiers(keys keyList) ([]note.Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("at least one -verifier-key is required")
	}
	var list []note.Verifier
	for _, k := range keys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("verifier key %q: %w", k, err)
		}
		list = append(list, v)
	}
	return list, nil
}

// decodeBase64 decodes canonical standard base64 only. Go's Strict decoding still
// skips CR and LF anywhere in the input, and the libraries' decoding also accepts
// non-zero padding bits: either way one value had many spellings, which aiaudit's
// verifier refuses, so a bundle edited that way passed here and failed there.
func decodeBase64(s string) ([]byte, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodeToString(raw) != s {
		return nil, errors.New("not in canonical base64")
	}
	return raw, nil
}

// openCheckpoint verifies a signed checkpoint with whichever published key signed it.
// Every signature line of a published key must verify, as aiaudit requires: the note
// library was given one key at a time, so a bad signature of another published key
// (after a rotation both are given) was an unknown key's and ignored, and it skips a
// second signature of a key that signed already, whatever it holds.
func openCheckpoint(text []byte, origin string, keys []note.Verifier) (*tlog.Checkpoint, error) {
	var last error
	for _, k := range keys {
		cp, _, _, err := tlog.ParseCheckpoint(text, origin, k)
		if err == nil {
			if err := trustedSignatures(text, keys); err != nil {
				return nil, err
			}
			return cp, checkpointSpelling(text, cp)
		}
		last = err
	}
	return nil, last
}

// trustedSignatures names the first signature line of a published key that does not
// verify, in aiaudit's words. The note library has read the note already, so its
// signature block is well formed.
func trustedSignatures(text []byte, keys []note.Verifier) error {
	split := bytes.LastIndex(text, []byte("\n\n"))
	body, block := text[:split+1], strings.TrimSuffix(string(text[split+2:]), "\n")
	for _, line := range strings.Split(block, "\n") {
		name, encoded, _ := strings.Cut(strings.TrimPrefix(line, "\u2014 "), " ")
		raw, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || len(raw) < 5 {
			continue // the library refuses it
		}
		hash := binary.BigEndian.Uint32(raw[:4])
		for _, k := range keys {
			if k.Name() == name && k.KeyHash() == hash && !k.Verify(body, raw[4:]) {
				return fmt.Errorf("invalid signature for key %s+%08x", name, hash)
			}
		}
	}
	return nil
}

// opened is a bundle's checkpoints that verified, by their signed text, whatever their
// origin: the fork check compares every one of them, as aiaudit's does.
type opened map[string]*tlog.Checkpoint

// open verifies a bundle line's checkpoint (or finds it verified by an earlier line) and
// requires its origin. It opens the checkpoint with the origin the note names, so that a
// checkpoint of another log still counts for the fork check, then compares the origin.
func (o opened) open(text, prefix, logID string, keys []note.Verifier) (*tlog.Checkpoint, error) {
	cp, ok := o[text]
	if !ok {
		named, _, _ := strings.Cut(text, "\n")
		var err error
		if cp, err = openCheckpoint([]byte(text), named, keys); err != nil {
			return nil, err
		}
		o[text] = cp
	}
	if !logOrigin(cp.Origin, prefix, logID) {
		return nil, originError{cp.Origin, prefix + "/" + logID}
	}
	return cp, nil
}

// logOrigin reports whether origin is one of the log's: PREFIX/LOG_ID (epoch 0), or
// PREFIX/LOG_ID/epoch-N (N >= 1, decimal without leading zeros, at most 18 digits), the
// origin the log signs under after an accepted loss, as aiaudit's origins module reads it.
func logOrigin(origin, prefix, logID string) bool {
	base := prefix + "/" + logID
	if origin == base {
		return true
	}
	n, ok := strings.CutPrefix(origin, base+"/epoch-")
	if !ok || n == "" || n[0] == '0' || len(n) > 18 {
		return false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// originError is a checkpoint that verified but is another log's.
type originError struct{ got, want string }

func (e originError) Error() string {
	return fmt.Sprintf("checkpoint origin %s is not %s", pyRepr(e.got), e.want)
}

// root is the first line whose checkpoint had an origin and size, and that root.
type root struct {
	hash []byte
	line int
}

// forked names an earlier line whose checkpoint has this one's origin and size but not
// its root: the log then shows two histories and its key signed both. aiaudit's wording.
func forked(text string, number int, o opened, roots map[string]root) []string {
	cp, ok := o[text]
	if !ok {
		return nil // the checkpoint did not open: named already
	}
	key := fmt.Sprintf("%s\x00%d", cp.Origin, cp.Size)
	earlier, ok := roots[key]
	if !ok {
		roots[key] = root{cp.Hash, number}
		return nil
	}
	if bytes.Equal(earlier.hash, cp.Hash) {
		return nil
	}
	return []string{fmt.Sprintf("checkpoint %s size %d has another root than line %d's: a forked log",
		cp.Origin, cp.Size, earlier.line)}
}

// checkpointSpelling refuses what the note and checkpoint libraries read leniently:
// signature lines in non-canonical base64 (unsigned, so anyone could respell them),
// and a tree size or root hash not written as the checkpoint's one spelling.
func checkpointSpelling(text []byte, cp *tlog.Checkpoint) error {
	split := bytes.LastIndex(text, []byte("\n\n"))
	body, sigs := string(text[:split+1]), string(text[split+2:])
	if !strings.HasPrefix(body, string(cp.Marshal())) {
		return errors.New("tree size or root hash is not in its canonical form")
	}
	for i, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		if _, err := decodeBase64(line[strings.LastIndexByte(line, ' ')+1:]); err != nil {
			return fmt.Errorf("signature %d is not in canonical base64", i+1)
		}
	}
	return nil
}

func runCheckpoint(args []string, out io.Writer) (int, error) {
	fs := flag.NewFlagSet("checkpoint", flag.ContinueOnError)
	var keys keyList
	fs.Var(&keys, "verifier-key", "published note verifier key (repeatable)")
	origin := fs.String("origin", "", "the log's checkpoint origin (PREFIX/LOG_ID)")
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	if fs.NArg() != 1 || *origin == "" {
		return 0, errors.New("checkpoint needs -verifier-key, -origin and one FILE")
	}
	list, err := verifiers(keys)
	if err != nil {
		return 0, err
	}
	text, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return 0, err
	}
	cp, err := openCheckpoint(text, *origin, list)
	if err != nil {
		fmt.Fprintf(out, "checkpoint: %v\n", err)
		return 1, nil
	}
	fmt.Fprintf(out, "%s size %d root %s\n", cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(cp.Hash))
	return 0, nil
}

// bundleLine is one line of an offline bundle, as the README specifies it.
type bundleLine struct {
	LogID     string            `json:"log_id"`
	Sequence  *uint64           `json:"sequence"`
	EventID   string            `json:"event_id"`
	Canonical string            `json:"canonical"`
	TlogProof string            `json:"tlog_proof"`
	Salt      *string           `json:"salt"`
	Content   map[string]string `json:"content"`
	paths     []string          // Content's paths in the line's order, as aiaudit names them
}

// asciiSpace is what makes a line blank, as aiaudit skips it (Python's bytes.strip):
// bytes.TrimSpace also trimmed U+0085 and U+00A0, and a line of JSON with a form feed
// or a no-break space around it passed here and was malformed there.
const asciiSpace = " \t\n\r\v\f"

// fieldKinds is the JSON type of each field a bundle line may hold, by its exact name.
var fieldKinds = map[string]string{
	"log_id": "a string", "sequence": "an integer", "event_id": "a string",
	"canonical": "a string", "tlog_proof": "a string", "salt": "a string", "content": "an object",
}

const fieldNames = "canonical, content, event_id, log_id, salt, sequence, tlog_proof"

// member is one name and value of a JSON object, as the text spells them.
type member struct {
	name  string
	raw   []byte // the name as written, quotes and escapes included
	value json.RawMessage
}

// parseLine reads one bundle line as aiaudit reads it, refusing what encoding/json takes
// leniently: it matches names case-insensitively ("Canonical", "ſequence"), ignores
// unknown names, keeps the last of a name given twice, reads null as an absent salt
// and content (or an empty content value), and replaces bytes that are not UTF-8 and
// escaped lone surrogates with U+FFFD. A line is one JSON object holding only the
// format's names, each once and spelt exactly, each value of its type, and nothing
// after it. It returns the line's event_id, if it has one, to name it by.
func parseLine(text []byte) (bundleLine, string, error) {
	var line bundleLine
	if !utf8.Valid(text) {
		return line, "", errors.New("the line is not UTF-8")
	}
	if nestedTooDeep(text) {
		return line, "", fmt.Errorf("arrays and objects nested more than %d deep", maxDepth)
	}
	decoder := json.NewDecoder(bytes.NewReader(text))
	var whole json.RawMessage
	if err := decoder.Decode(&whole); err != nil {
		return line, "", err
	}
	if _, err := decoder.Token(); err != io.EOF {
		return line, "", errors.New("data follows the JSON object")
	}
	if kind := jsonKind(whole); kind != "an object" {
		return line, "", fmt.Errorf("a line must be a JSON object, not %s", kind)
	}
	members, err := objectMembers(whole)
	if err != nil {
		return line, "", err
	}
	id := ""
	for _, m := range members {
		if m.name == "event_id" && jsonKind(m.value) == "a string" && id == "" {
			_ = json.Unmarshal(m.value, &id)
		}
	}
	if err := checkMembers(members); err != nil {
		return line, id, err
	}
	decoder = json.NewDecoder(bytes.NewReader(whole))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&line); err != nil {
		return line, id, err
	}
	for _, m := range members {
		if m.name == "content" {
			content, _ := objectMembers(m.value) // read by checkMembers already
			for _, c := range content {
				line.paths = append(line.paths, c.name)
			}
		}
	}
	return line, id, nil
}

// checkMembers checks a line's names, that salt and content come together, and the JSON
// type of their values, in aiaudit's order.
func checkMembers(members []member) error {
	has := func(name string) bool {
		return slices.ContainsFunc(members, func(m member) bool { return m.name == name })
	}
	for _, m := range members {
		if _, known := fieldKinds[m.name]; !known {
			return fmt.Errorf("unknown field %s: a line holds %s (names are case-sensitive)", m.raw, fieldNames)
		}
	}
	if has("salt") != has("content") {
		// Content is only as good as the commitment the salt lets us recompute.
		present, absent := "salt", "content"
		if has("content") {
			present, absent = absent, present
		}
		return fmt.Errorf("%s without %s: a line has both or neither", present, absent)
	}
	for _, m := range members {
		want := fieldKinds[m.name]
		if got := jsonKind(m.value); got != want {
			return fmt.Errorf("field %q must be %s, not %s", m.name, want, got)
		}
		switch m.name {
		case "sequence":
			n, err := strconv.ParseUint(string(m.value), 10, 64)
			if err != nil || strconv.FormatUint(n, 10) != string(m.value) {
				// aiaudit's wording: a leaf index is 64 bits, and aiaudit read any integer
				// here until 2026-12-07, counting the line in a seal's digest.
				return fmt.Errorf("field 'sequence' must be an integer from 0 to %d, not %s", uint64(math.MaxUint64), m.value)
			}
		case "content":
			content, err := objectMembers(m.value)
			if err != nil {
				return fmt.Errorf("field \"content\": %w", err)
			}
			for _, c := range content {
				if kind := jsonKind(c.value); kind != "a string" {
					return fmt.Errorf("content %q must be a string, not %s", c.name, kind)
				}
			}
		}
	}
	for _, name := range []string{"log_id", "sequence", "event_id", "canonical", "tlog_proof"} {
		if !has(name) {
			return fmt.Errorf("field %q is missing", name)
		}
	}
	return nil
}

// objectMembers lists a JSON object's names and values in their order, refusing a name
// given twice (encoding/json keeps the last, other parsers the first) and a string that
// escapes a lone surrogate (encoding/json reads it as U+FFFD, aiaudit as itself).
func objectMembers(object json.RawMessage) ([]member, error) {
	return listMembers(object, true)
}

// listMembers is objectMembers, refusing lone surrogates only if strict.
func listMembers(object json.RawMessage, strict bool) ([]member, error) {
	decoder := json.NewDecoder(bytes.NewReader(object))
	if _, err := decoder.Token(); err != nil { // the opening brace
		return nil, err
	}
	var list []member
	seen := map[string]bool{}
	for decoder.More() {
		start := decoder.InputOffset()
		token, err := decoder.Token()
		if err != nil {
			return nil, err
		}
		raw := bytes.TrimLeft(object[start:decoder.InputOffset()], asciiSpace+",")
		name, _ := token.(string)
		var value json.RawMessage
		if err := decoder.Decode(&value); err != nil {
			return nil, err
		}
		if strict && loneSurrogate(raw) {
			return nil, fmt.Errorf("name %s escapes a lone surrogate (read elsewhere as U+FFFD)", raw)
		}
		if seen[name] {
			return nil, fmt.Errorf("key %q appears twice in one object", name)
		}
		seen[name] = true
		if strict && loneSurrogate(value) {
			return nil, fmt.Errorf("the value of %q escapes a lone surrogate (read elsewhere as U+FFFD)", name)
		}
		list = append(list, member{name, raw, value})
	}
	return list, nil
}

// loneSurrogate reports whether valid JSON text holds a \uD800-\uDFFF escape that is
// not half of a pair (outside strings JSON has no backslash, so every one is an escape).
func loneSurrogate(text []byte) bool {
	unit := func(at int) (uint64, bool) {
		if at+6 > len(text) || text[at] != '\\' || text[at+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(text[at+2:at+6]), 16, 16)
		return n, err == nil
	}
	for i := 0; i < len(text); i++ {
		if text[i] != '\\' {
			continue
		}
		u, ok := unit(i)
		switch {
		case !ok:
			i++ // a one-letter escape
		case u >= 0xD800 && u <= 0xDBFF:
			if low, ok := unit(i + 6); ok && low >= 0xDC00 && low <= 0xDFFF {
				i += 11
				continue
			}
			return true
		case u >= 0xDC00 && u <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

// jsonKind names the JSON type of a valid value, as aiaudit names it.
func jsonKind(value json.RawMessage) string {
	value = bytes.TrimLeft(value, asciiSpace)
	if len(value) == 0 {
		return "nothing"
	}
	switch value[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	if bytes.ContainsAny(value, ".eE") {
		return "a number"
	}
	return "an integer"
}

func runBundle(args []string, out io.Writer) (int, error) {
	fs := flag.NewFlagSet("bundle", flag.ContinueOnError)
	var keys keyList
	fs.Var(&keys, "verifier-key", "published note verifier key (repeatable)")
	prefix := fs.String("origin-prefix", "", "checkpoint origin prefix; a log's origin is PREFIX/LOG_ID")
	var logs keyList
	fs.Var(&logs, "log", "only this log (repeatable): a line of another log is a problem")
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	if fs.NArg() != 1 || *prefix == "" {
		return 0, errors.New("bundle needs -verifier-key, -origin-prefix and one FILE")
	}
	list, err := verifiers(keys)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	reader := bufio.NewReaderSize(f, 1<<20)
	checked, problems := 0, 0
	seen := map[string]int{} // "log\x00seq:N" and "log\x00id:E" -> first line: each event once
	checkpoints, roots := opened{}, map[string]root{}
	logSummaries := map[string]*logSummary{}
	scopes := &scopes{held: map[uint64]bool{}}
	seals := newSeals()
	for number := 1; ; number++ {
		text, more, err := nextLine(reader)
		if err != nil {
			return problems, err
		}
		if !more {
			break
		}
		if len(bytes.Trim(text, asciiSpace)) == 0 {
			continue
		}
		object, isObject := lineObject(text)
		if isObject && hasMember(object, "scope") { // not an event: the export's claim
			if what := scopes.read(object, number, text); what != "" {
				fmt.Fprintf(out, "line %d scope: %s\n", number, what)
				problems++
			}
			continue
		}
		if isObject && hasMember(object, "seal") { // not an event: the export's closing record
			scopes.afterFirst = true // a scope after it is not first: a seal line before it
			if what := seals.read(object, number); what != "" {
				fmt.Fprintf(out, "line %d seal: %s\n", number, what)
				problems++
			}
			continue
		}
		scopes.afterFirst = true
		seals.eventAfter = seals.eventAfter || seals.first != 0
		checked++
		line, id, err := parseLine(text)
		var found []string
		if err != nil {
			found = []string{fmt.Sprintf("malformed line: %v", err)}
		} else if values, malformed := decode(line); malformed != "" {
			found = []string{malformed}
		} else {
			// Only a line aiaudit reads whole counts for duplicates: a later intact copy
			// of a malformed line is the event's first line, not a duplicate.
			found = duplicate(line, number, seen)
			seals.add(*line.Sequence, values.canonical)
			scopes.hold(line)
			whats, proof := checkLine(line, values, *prefix, list, logs, checkpoints)
			found = append(found, whats...)
			if proof != nil {
				found = append(found, forked(string(proof.Checkpoint), number, checkpoints, roots)...)
			}
			found = append(found, scopes.refutedBy(line)...)
			if proof != nil {
				text := string(proof.Checkpoint)
				if len(logs) == 0 || slices.Contains(logs, line.LogID) { // the logs asked for only
					found = append(found, secondCheckpoint(line, text, number, *prefix, checkpoints, logSummaries, scopes.scope)...)
				}
				if len(found) == 0 {
					logSummaries[line.LogID].add(line, number)
				}
			}
		}
		if id == "" {
			id = "?"
		}
		for _, p := range found {
			fmt.Fprintf(out, "line %d event %s: %s\n", number, id, p)
			problems++
		}
	}
	for _, p := range putBack(logSummaries) {
		fmt.Fprintf(out, "line %d event %s: %s\n", p.line, p.id, putBackText(p.sequence, p.record))
		problems++
	}
	if what := scopes.incomplete(); what != "" {
		fmt.Fprintf(out, "line %d scope: %s\n", scopes.scope.line, what)
		problems++
	}
	for _, what := range seals.check(scopes.scope, scopes.text, logSummaries, list, *prefix, logs) {
		fmt.Fprintf(out, "line %d seal: %s\n", seals.first, what)
		problems++
	}
	// As aiaudit verify --bundle: a bundle without events is no evidence that all is well,
	// unless it is a sealed export that matched nothing, which its seal proves.
	empty := checked == 0 && problems == 0 && seals.empty != nil
	nothing := checked == 0 && !empty
	if nothing {
		fmt.Fprintln(out, "the bundle holds no events: nothing verified")
	}
	if !nothing && problems == 0 {
		var emptyLines []string
		if empty {
			emptyLines = seals.empty
		}
		summarize(out, logSummaries, list, logs, scopes.scope, emptyLines, seals.sealed, seals.scopeProven)
	}
	fmt.Fprintf(out, "%d event(s) checked, %d problem(s)\n", checked, problems)
	if nothing {
		return 1, nil
	}
	return problems, nil
}

// nextLine is a bundle's next line as bufio.ScanLines splits it (without its line feed
// and one carriage return before it; a last line without a line feed too), of any
// length: aiaudit reads lines of any length, and a bufio.Scanner stopped the whole
// bundle at a line of 64 MiB ("token too long", exit 2, no line named), which an event
// stored under a raised max_event_bytes makes. more is false at the end of the file.
func nextLine(r *bufio.Reader) (text []byte, more bool, err error) {
	text, err = r.ReadBytes('\n')
	if err == io.EOF {
		if len(text) == 0 {
			return nil, false, nil
		}
		err = nil
	}
	if err != nil {
		return nil, false, err
	}
	text = bytes.TrimSuffix(text, []byte("\n"))
	return bytes.TrimSuffix(text, []byte("\r")), true, nil
}

// duplicate names an earlier line with the same log and sequence, or else the same log
// and event id, in aiaudit's words.
func duplicate(line bundleLine, number int, seen map[string]int) []string {
	keys := [][2]string{
		{fmt.Sprintf("%s\x00seq:%d", line.LogID, *line.Sequence), "sequence"},
		{line.LogID + "\x00id:" + line.EventID, "event_id"},
	}
	var found []string
	for _, key := range keys {
		if first, ok := seen[key[0]]; !ok {
			seen[key[0]] = number
		} else if found == nil {
			found = []string{fmt.Sprintf("duplicate: line %d has the same log and %s", first, key[1])}
		}
	}
	return found
}

// decoded is what a bundle line's salt, canonical and tlog_proof hold.
type decoded struct {
	salt, canonical []byte
	proof           tproof.TLogProof
	respelt         error // a line of the proof's checkpoint not in its canonical form
}

// decode decodes a line's salt, canonical and tlog_proof in aiaudit's order, or names
// the first value that makes aiaudit call the line malformed: it then never counts the
// line for duplicates. A respelt checkpoint is not one (aiaudit finds it unsigned when it
// opens it, and counts the line): it is kept for checkLine to name.
func decode(line bundleLine) (d decoded, malformed string) {
	var err error
	if line.Salt != nil {
		if d.salt, err = decodeBase64(*line.Salt); err != nil {
			return d, fmt.Sprintf("salt is not base64: %v", err)
		}
		if len(d.salt) != saltBytes {
			// HMAC takes a key of any length, so commitments made with another salt
			// still recompute; the format's salt is 32 bytes (aiaudit's wording).
			return d, fmt.Sprintf("malformed line: salt has %d bytes, not %d", len(d.salt), saltBytes)
		}
	}
	if d.canonical, err = decodeBase64(line.Canonical); err != nil {
		return d, fmt.Sprintf("canonical is not base64: %v", err)
	}
	if err := d.proof.Unmarshal([]byte(line.TlogProof)); err != nil {
		return d, fmt.Sprintf("tlog-proof: %v", err)
	}
	var respelt spellingError
	if err := proofSpelling(line.TlogProof, d.proof); errors.As(err, &respelt) && respelt.checkpoint {
		d.respelt = err
	} else if err != nil {
		return d, fmt.Sprintf("tlog-proof: %v", err)
	}
	return d, ""
}

// checkLine verifies one event: its log is one asked for, checkpoint signature and origin,
// leaf, inclusion, commitments. It returns the line's tlog-proof for the fork check,
// unless its checkpoint is respelt or its canonical bytes are no JSON object.
func checkLine(line bundleLine, d decoded, prefix string, keys []note.Verifier, logs []string, o opened) ([]string, *tproof.TLogProof) {
	p := d.proof
	if len(logs) > 0 && !slices.Contains(logs, line.LogID) {
		// aiaudit's wording: the id as Python's repr, the logs asked for sorted.
		asked := slices.Sorted(slices.Values(logs))
		return []string{fmt.Sprintf("log %s is not one of the logs to verify (%s)",
			pyRepr(line.LogID), strings.Join(asked, ", "))}, &p
	}
	if p.Index != *line.Sequence {
		return []string{fmt.Sprintf("proof index %d is not the event's sequence %d", p.Index, *line.Sequence)}, &p
	}
	if d.respelt != nil {
		// not the checkpoint the library read: no fork or second checkpoint of the log
		return []string{fmt.Sprintf("tlog-proof: %v", d.respelt)}, nil
	}
	cp, err := o.open(string(p.Checkpoint), prefix, line.LogID, keys)
	var wrong originError
	if errors.As(err, &wrong) {
		return []string{err.Error()}, &p // aiaudit's wording
	} else if err != nil {
		return []string{fmt.Sprintf("checkpoint: %v", err)}, &p
	}
	problems, malformed := checkEvent(line, d.canonical, d.salt, p, cp)
	if malformed {
		return problems, nil
	}
	return problems, &p
}

// saltBytes is the length of an event's salt: its 32 random bytes.
const saltBytes = 32

// canonicalUnread is a line's canonical bytes that aiaudit does not read as JSON one way:
// they are read as strictly as a line (UTF-8, each name once, no -0, no lone surrogate,
// nothing after the object), in aiaudit's words. encoding/json read bytes that are not
// UTF-8 as U+FFFD and kept the last of a name given twice, so a canonical edited by one
// bit was named "content without a commitment" here and a malformed line there.
const canonicalUnread = "canonical is not JSON that every reader reads alike (not UTF-8, a name twice, an " +
	"integer spelt two ways, NaN, a lone surrogate, nesting past 500 or data after the object)"

// checkEvent checks a line's event against its opened checkpoint: leaf, inclusion,
// identity, commitments; malformed if the canonical bytes are no JSON object.
func checkEvent(line bundleLine, canonical, salt []byte, p tproof.TLogProof, cp *tlog.Checkpoint) (problems []string, malformed bool) {
	hashes := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		hashes[i] = p.Hashes[i][:]
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(canonical)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, cp.Size, leaf, hashes, cp.Hash); err != nil {
		problems = append(problems, "inclusion proof: "+inclusionProblem(err))
	}
	if !utf8.Valid(canonical) || !readsWhole(canonical) {
		return append(problems, canonicalUnread), true
	}
	var value any
	decoder := json.NewDecoder(bytes.NewReader(canonical))
	decoder.UseNumber()
	if decoder.Decode(&value) != nil {
		return append(problems, canonicalUnread), true
	}
	if _, err := decoder.Token(); err != io.EOF {
		return append(problems, canonicalUnread), true
	}
	event, ok := value.(map[string]any)
	if !ok {
		return append(problems, fmt.Sprintf("canonical is %s, not a JSON object", jsonKind(canonical))), true
	}
	if loneSurrogate(canonical) { // after its type, as aiaudit reads it: "\ud800" is a string
		return append(problems, canonicalUnread), true
	}
	if event["eventId"] != line.EventID || event["tenantId"] != line.LogID {
		problems = append(problems, "canonical eventId/tenantId are not the line's event_id/log_id")
	}
	if line.Salt != nil {
		problems = append(problems, commitmentProblems(event, line.paths, line.Content, salt)...)
	}
	return problems, false
}

// spellingError is a tlog-proof line not in its canonical form; checkpoint if it is a
// line of the signed checkpoint, after the blank line.
type spellingError struct {
	what       string
	checkpoint bool
}

func (e spellingError) Error() string { return e.what }

// proofSpelling refuses a tlog-proof that is not written exactly as the library writes
// what it read: its parser decodes the hashes and extra data leniently, takes an index
// with leading zeros and drops a CR before each LF (the checkpoint's too), so a proof
// had many spellings; aiaudit gives each value one. It names the first line that differs
// (a spellingError).
func proofSpelling(text string, p tproof.TLogProof) error {
	want := strings.SplitAfter(string(p.Marshal()), "\n")
	got := strings.SplitAfter(text, "\n")
	roles := []string{"header"}
	if p.ExtraData != nil {
		roles = append(roles, "extra data")
	}
	roles = append(roles, "index")
	for i := range p.Hashes {
		roles = append(roles, fmt.Sprintf("hash %d", i+1))
	}
	for i, g := range got {
		if i < len(want) && g == want[i] {
			continue
		}
		role := "checkpoint"
		if i < len(roles) {
			role = roles[i]
		}
		// the line after the hashes is the blank one, which aiaudit reads with them
		wrong := spellingError{checkpoint: i > len(roles)}
		if i >= len(want) {
			wrong.what = fmt.Sprintf("%s: line %d %q is not in its canonical form", role, i+1, g)
		} else {
			wrong.what = fmt.Sprintf("%s: line %d %q is not in its canonical form %q", role, i+1, g, want[i])
		}
		return wrong
	}
	if len(got) != len(want) {
		return spellingError{"the proof does not end as its canonical form", true}
	}
	return nil
}

// commitmentProblems recomputes each content value's commitment as the README defines it:
// "hmac-sha256:" + hex(HMAC-SHA256(key = salt, msg = path || 0x00 || raw)), where raw is
// the UTF-8 of a string or the decoded bytes of a bytes field (inline media `data`).
// Content must be given for every commitment and only for them, as aiaudit requires
// (its wording): a line that left a commitment out passed here, its content unproven.
// paths is the content's order: aiaudit names content without a commitment in it.
func commitmentProblems(event map[string]any, paths []string, content map[string]string, salt []byte) []string {
	var problems []string
	committed := commitments(event, 0, "")
	at := make(map[string]bool, len(committed))
	for _, c := range committed {
		at[c.path] = true
	}
	for _, path := range paths {
		if !at[path] {
			problems = append(problems, fmt.Sprintf("%s: content without a commitment", path))
		}
	}
	for _, c := range committed {
		value, ok := content[c.path]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: commitment without content", c.path))
			continue
		}
		raw := []byte(value)
		if c.bytes {
			data, err := decodeBase64(value)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: bytes not in canonical base64", c.path))
				continue
			}
			raw = data
		}
		mac := hmac.New(sha256.New, salt)
		mac.Write([]byte(c.path))
		mac.Write([]byte{0})
		mac.Write(raw)
		if got, _ := c.value.(string); got != "hmac-sha256:"+hex.EncodeToString(mac.Sum(nil)) {
			problems = append(problems, fmt.Sprintf("%s: content does not match its commitment", c.path))
		}
	}
	return problems
}

func runConsistency(args []string, out io.Writer) (int, error) {
	fs := flag.NewFlagSet("consistency", flag.ContinueOnError)
	var keys keyList
	fs.Var(&keys, "verifier-key", "published note verifier key (repeatable)")
	oldPath := fs.String("old", "", "the earlier signed checkpoint")
	newPath := fs.String("new", "", "the later signed checkpoint")
	proofPath := fs.String("proof", "", "consistency proof: base64 hashes, one per line")
	origin := fs.String("origin", "", "the log's checkpoint origin (PREFIX/LOG_ID)")
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	if *oldPath == "" || *newPath == "" || *proofPath == "" || *origin == "" || fs.NArg() != 0 {
		return 0, errors.New("consistency needs -verifier-key, -origin, -old, -new and -proof")
	}
	list, err := verifiers(keys)
	if err != nil {
		return 0, err
	}
	var texts [3][]byte
	for i, p := range []string{*oldPath, *newPath, *proofPath} {
		if texts[i], err = os.ReadFile(p); err != nil {
			return 0, err
		}
	}
	var hashes [][]byte
	for _, l := range strings.Fields(string(texts[2])) {
		h, err := decodeBase64(l)
		if err != nil {
			return 0, fmt.Errorf("proof hash %q is not base64", l)
		}
		hashes = append(hashes, h)
	}
	older, err := openCheckpoint(texts[0], *origin, list)
	if err != nil {
		fmt.Fprintf(out, "old checkpoint: %v\n", err)
		return 1, nil
	}
	newer, err := openCheckpoint(texts[1], *origin, list)
	if err != nil {
		fmt.Fprintf(out, "new checkpoint: %v\n", err)
		return 1, nil
	}
	err = proof.VerifyConsistency(rfc6962.DefaultHasher, older.Size, newer.Size, hashes, older.Hash, newer.Hash)
	if err != nil {
		fmt.Fprintf(out, "consistency %d -> %d: %s\n", older.Size, newer.Size, describe(err))
		return 1, nil
	}
	fmt.Fprintf(out, "%s: tree %d is consistent with tree %d\n", *origin, newer.Size, older.Size)
	return 0, nil
}

// describe puts a proof error on one line (the library's root mismatch spans several).
func describe(err error) string {
	var mismatch proof.RootMismatchError
	if errors.As(err, &mismatch) {
		return fmt.Sprintf("the proof leads to root %s, not the checkpoint's %s",
			base64.StdEncoding.EncodeToString(mismatch.CalculatedRoot),
			base64.StdEncoding.EncodeToString(mismatch.ExpectedRoot))
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// inclusionProblem is a failed inclusion proof in aiaudit's words: the library names a proof
// of the wrong length and an index past the tree in its own (until 2026-12-07 here too).
func inclusionProblem(err error) string {
	var got, want, index, size uint64
	if _, scanned := fmt.Sscanf(err.Error(), "wrong proof size %d, want %d", &got, &want); scanned == nil {
		if got > want {
			return "proof is longer than the path to the root"
		}
		return "proof is shorter than the path to the root"
	}
	if _, scanned := fmt.Sscanf(err.Error(), "index is beyond size: %d >= %d", &index, &size); scanned == nil {
		return fmt.Sprintf("leaf index %d is outside a tree of size %d", index, size)
	}
	return describe(err)
}

// pyRepr spells a string as Python's repr does, as aiaudit names a log id: in single
// quotes (double if it holds a single quote and no double one), with backslash, the
// quote, tab, LF, CR and every unprintable character escaped.
func pyRepr(s string) string {
	quote := '\''
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	var b strings.Builder
	b.WriteRune(quote)
	for _, r := range s {
		switch {
		case r == quote || r == '\\':
			b.WriteRune('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteRune(quote)
	return b.String()
}

// logSummary is what a verified bundle shows of one log, for the summary printed when
// every line verified: aiaudit verify --bundle prints the same lines (on its stderr).
type logSummary struct {
	cp        *tlog.Checkpoint
	note      string // the signed checkpoint of the log's first line
	line      int    // that line
	others    map[string]bool
	sequences []uint64
	unordered bool
	content   int // lines with salt and content, each value matching its commitment
	withheld  int // lines without content whose event has commitments
	none      int // lines without content whose event has no commitment
	// the lines without content, and the events the log's erasure and retention records
	// in the bundle name, each with the latest record's sequence: a record after the
	// event proves its content was erased (one names every id asked for, even one no
	// event had yet, and an event given that id later kept its content)
	contentless []contentless
	named       map[string]uint64
	// the lines whose content verified and is not {}, to name each a later record erased
	// (put back)
	present []present
}

// contentless is a line without content: its event id and sequence.
type contentless struct {
	id       string
	sequence uint64
}

// present is a line whose content verified: its event id, sequence and line number.
type present struct {
	id       string
	sequence uint64
	line     int
}

// secondCheckpoint names the first line of a log whose verified checkpoint is not the
// log's first one (another size, or the same size and root signed again is the same
// one; the same size with another root is a fork, named already): an export proves all
// its lines against one checkpoint. It counts lines whose checkpoint opened and is of
// their log, and records the log's first checkpoint.
func secondCheckpoint(line bundleLine, text string, number int, prefix string, o opened, logs map[string]*logSummary, sc *scope) []string {
	cp, ok := o[text]
	if !ok || !logOrigin(cp.Origin, prefix, line.LogID) {
		return nil
	}
	first, ok := logs[line.LogID]
	if !ok {
		logs[line.LogID] = &logSummary{cp: cp, note: text, line: number, others: map[string]bool{}, named: map[string]uint64{}}
		if sc != nil && sc.logID == line.LogID && cp.Size != sc.ints["tree_size"] {
			// the scope's claim the checkpoint refutes (aiaudit's wording)
			return []string{fmt.Sprintf("checkpoint size %d is not the scope's tree_size %d (line %d)",
				cp.Size, sc.ints["tree_size"], sc.line)}
		}
		return nil
	}
	if cp.Size == first.cp.Size && cp.Origin == first.cp.Origin {
		return nil // the same checkpoint, or a fork
	}
	key := fmt.Sprintf("%d %x", cp.Size, cp.Hash)
	if first.others[key] {
		return nil
	}
	first.others[key] = true
	return []string{fmt.Sprintf("log %s has a second checkpoint (size %d root %s) besides line %d's "+
		"(size %d root %s): an export proves all its lines against one checkpoint, so lines of "+
		"different exports were joined", pyRepr(line.LogID), cp.Size, base64.StdEncoding.EncodeToString(cp.Hash),
		first.line, first.cp.Size, base64.StdEncoding.EncodeToString(first.cp.Hash))}
}

// add counts a line that verified, the bundle's line number.
func (s *logSummary) add(line bundleLine, number int) {
	if n := len(s.sequences); n > 0 && *line.Sequence < s.sequences[n-1] {
		s.unordered = true
	}
	s.sequences = append(s.sequences, *line.Sequence)
	canonical, _ := decodeBase64(line.Canonical)
	switch {
	case line.Salt != nil:
		s.content++
		if len(line.Content) > 0 { // {}: no field, nothing to erase (as aiaudit verify)
			s.present = append(s.present, present{line.EventID, *line.Sequence, number})
		}
	case hasCommitment(canonical):
		s.withheld++
		s.contentless = append(s.contentless, contentless{line.EventID, *line.Sequence})
	default:
		s.none++
	}
	for _, id := range erasedIDs(canonical) {
		if at, ok := s.named[id]; !ok || *line.Sequence > at {
			s.named[id] = *line.Sequence
		}
	}
}

// recordTypes are the event types whose records delete content: a data subject's
// erasure and the retention policy's. Their canonical form names the events
// (privacyAction.eventIds).
var recordTypes = []string{"EVENT_TYPE_PRIVACY_ERASURE", "EVENT_TYPE_RETENTION_APPLIED"}

// erasedIDs lists the events an erasure or retention record names; nil for another event.
func erasedIDs(canonical []byte) []string {
	var event struct {
		EventType     string `json:"eventType"`
		PrivacyAction struct {
			EventIDs []any `json:"eventIds"`
		} `json:"privacyAction"`
	}
	if json.Unmarshal(canonical, &event) != nil || !slices.Contains(recordTypes, event.EventType) {
		return nil
	}
	var ids []string
	for _, id := range event.PrivacyAction.EventIDs {
		if text, ok := id.(string); ok {
			ids = append(ids, text)
		}
	}
	return ids
}

// erased counts the lines without content whose event a later record in the bundle names.
func (s *logSummary) erased() int {
	n := 0
	for _, c := range s.contentless {
		if at, ok := s.named[c.id]; ok && at > c.sequence {
			n++
		}
	}
	return n
}

// putBackLine is a line whose content is present though a later record names its event.
type putBackLine struct {
	line             int
	id               string
	sequence, record uint64
}

// putBack lists, by line, the lines whose content verified though a proven erasure or
// retention record after the event in the bundle names it: content erased, then restored
// from a backup taken before (aiaudit verify --bundle names them alike).
func putBack(summaries map[string]*logSummary) []putBackLine {
	var found []putBackLine
	for _, s := range summaries {
		for _, c := range s.present {
			if at, ok := s.named[c.id]; ok && at > c.sequence {
				found = append(found, putBackLine{c.line, c.id, c.sequence, at})
			}
		}
	}
	slices.SortFunc(found, func(a, b putBackLine) int { return a.line - b.line })
	return found
}

// putBackText is aiaudit's wording of content put back (bundle.put_back).
func putBackText(sequence, record uint64) string {
	return fmt.Sprintf("sequence %d: content present although the erasure record at sequence %d "+
		"in the bundle names the event (put back?)", sequence, record)
}

// hasCommitment reports whether a canonical event holds a content commitment, as
// commitments finds them (a field marked sensitive_content).
func hasCommitment(canonical []byte) bool {
	var event any
	if json.Unmarshal(canonical, &event) != nil {
		return false
	}
	return len(commitments(event, 0, "")) > 0
}

// keyName is how the summary names a key: name+keyid (8 hex digits).
func keyName(k note.Verifier) string {
	return fmt.Sprintf("%s+%08x", k.Name(), k.KeyHash())
}

// maxRanges is how many sequence ranges a log's summary lists before it counts the rest.
const maxRanges = 20

// ranges lists sorted sequences as merged inclusive ranges: "0..9, 12, 14..15".
func ranges(sequences []uint64) string {
	sorted := slices.Sorted(slices.Values(sequences))
	var list []string
	for i := 0; i < len(sorted); {
		j := i
		for j+1 < len(sorted) && sorted[j+1] == sorted[j]+1 {
			j++
		}
		if i == j {
			list = append(list, strconv.FormatUint(sorted[i], 10))
		} else {
			list = append(list, fmt.Sprintf("%d..%d", sorted[i], sorted[j]))
		}
		i = j + 1
	}
	if len(list) > maxRanges {
		return strings.Join(list[:maxRanges], ", ") + fmt.Sprintf(", ... and %d more range(s)", len(list)-maxRanges)
	}
	return strings.Join(list, ", ")
}

// summarize prints what a bundle that verified shows, in aiaudit's words: per log its
// checkpoint and the keys that signed it, the sequences it holds and what of the
// checkpoint it leaves out, whose content is proven; a warning for several logs without
// -log; where each trusted key came from.
// empty: the lines said for a sealed export that matched no event (its bundle has no
// event line, so no log summary), after the logs' as aiaudit says them.
func summarize(out io.Writer, summaries map[string]*logSummary, keys []note.Verifier, logs []string, sc *scope, empty []string, sealed string, scopeProven bool) {
	ids := slices.Sorted(maps.Keys(summaries))
	for _, id := range ids {
		s := summaries[id]
		var signers []string
		for _, k := range keys {
			if _, _, _, err := tlog.ParseCheckpoint([]byte(s.note), s.cp.Origin, k); err == nil {
				signers = append(signers, keyName(k))
			}
		}
		fmt.Fprintf(out, "log %s: checkpoint %s size %d root %s signed by %s\n", id, s.cp.Origin, s.cp.Size,
			base64.StdEncoding.EncodeToString(s.cp.Hash), strings.Join(signers, ", "))
		n := uint64(len(s.sequences))
		coverage := fmt.Sprintf("all %d of the checkpoint", s.cp.Size)
		if n != s.cp.Size {
			coverage = fmt.Sprintf("%d of the checkpoint's %d not in the bundle", s.cp.Size-n, s.cp.Size)
		}
		if s.unordered {
			coverage += "; lines not in sequence order"
		}
		fmt.Fprintf(out, "log %s: %d event(s) at sequences %s; %s\n", id, n, ranges(s.sequences), coverage)
		content := fmt.Sprintf("log %s: content verified for %d event(s)", id, s.content)
		erased := s.erased()
		if erased > 0 {
			content += fmt.Sprintf("; %d erased (named by an erasure or retention record in the bundle)", erased)
		}
		if rest := s.withheld - erased; rest > 0 {
			why := "without content (erased or withheld)"
			if sc != nil && sc.logID == id && sc.strings["content"] == "included" {
				why = "without content though the scope says it was included, and no erasure record in the " +
					"bundle names them (erased by a record not in the bundle, or their content removed from the line)"
			} else if sc != nil && sc.logID == id {
				why = fmt.Sprintf("without content (%s, the scope says)", sc.strings["content"])
			}
			content += fmt.Sprintf("; %d %s: their content is not proven", rest, why)
		}
		if s.none > 0 {
			content += fmt.Sprintf("; %d with no content fields", s.none)
		}
		fmt.Fprintln(out, content)
	}
	for _, line := range empty {
		fmt.Fprintln(out, line)
	}
	if sc != nil {
		for _, line := range sc.lines(sealed, scopeProven) {
			fmt.Fprintln(out, line)
		}
	} else {
		fmt.Fprintln(out, noScope)
	}
	if len(ids) > 1 && len(logs) == 0 {
		fmt.Fprintf(out, "warning: the bundle holds %d logs (%s): an export is of one log; pass --log with the one you expect\n",
			len(ids), strings.Join(ids, ", "))
	}
	for _, k := range keys {
		fmt.Fprintf(out, "verifier key %s: given with --verifier-key\n", keyName(k))
	}
}

// The scope line: {"scope": {...}}, the bundle's first line since aiaudit's writers
// record what an export was made for (its access record's action). Its fields, by action.
const (
	searchExport = "search.export"
	exportBundle = "integrity.export_bundle"
	maxInt63     = uint64(math.MaxInt64)
)

type scopeField struct{ name, kind string }

var scopeCommon = []scopeField{
	{"action", "a string"}, {"log_id", "a string"}, {"tree_size", "an integer"},
	{"exported_at", "a string"}, {"requested_by", "a string"}, {"access_record", "a string"},
	{"content", "a string"},
}

var scopeOwn = map[string][]scopeField{
	searchExport: {{"filter", "a string"}, {"query", "a string"}, {"order_by", "a string"}, {"up_to_sequence", "an integer"}},
	exportBundle: {{"start", "an integer"}, {"end", "an integer"}},
}

// contentSaid is how the summary says each value of the scope's content.
var contentSaid = map[string]string{
	"included":                  "content included",
	"left out: --no-content":    "content left out (--no-content)",
	"withheld: no content.read": "content withheld (the exporter has no content.read)",
}

const noScope = "scope: none in the bundle (written before bundles recorded their scope, or its first " +
	"line removed): nothing says what the export was for"

// scope is a bundle's scope line, read.
type scope struct {
	line    int
	action  string
	logID   string
	strings map[string]string
	ints    map[string]uint64
}

// span is the sequences [a, b) every line must lie in.
func (s *scope) span() (uint64, uint64) {
	if s.action == searchExport {
		return 0, s.ints["up_to_sequence"]
	}
	return s.ints["start"], s.ints["end"]
}

// lines is the summary's scope lines, in aiaudit's words; proven: the verified seal's
// closing record commits to the scope line.
func (s *scope) lines(sealed string, proven bool) []string {
	what := ""
	if s.action == searchExport {
		what = fmt.Sprintf("scope: filter %s; query %s; order_by %s; events before sequence %d",
			pyRepr(s.strings["filter"]), pyRepr(s.strings["query"]), pyRepr(s.strings["order_by"]), s.ints["up_to_sequence"])
	} else {
		what = fmt.Sprintf("scope: sequences %d..%d", s.ints["start"], s.ints["end"]-1)
	}
	what += fmt.Sprintf("; checkpoint size %d; %s", s.ints["tree_size"], contentSaid[s.strings["content"]])
	head := fmt.Sprintf("scope (line %d): the exporter's claim, which no signature covers; checked against the "+
		"proven lines: its log, checkpoint size and sequences", s.line)
	if proven {
		head = fmt.Sprintf("scope (line %d): the export's, as its seal's closing record commits to it "+
			"(access.scope_sha256); checked against the proven lines: its log, checkpoint size and sequences", s.line)
	}
	lines := []string{
		head,
		fmt.Sprintf("scope: %s of log %s requested by %s at %s; access record %s (an event of the log "+
			"written after this checkpoint: match it there)", s.action, pyRepr(s.logID),
			pyRepr(s.strings["requested_by"]), pyRepr(s.strings["exported_at"]), pyRepr(s.strings["access_record"])),
		what,
	}
	if s.action == searchExport && sealed != "" {
		lines = append(lines, sealed) // what the verified seal proves
	} else if s.action == searchExport {
		// a search's lines are what its filter matched, which no line proves
		up := s.ints["up_to_sequence"]
		lines = append(lines, fmt.Sprintf("scope: not proven: that the lines are every event the "+
			"filter and query matched before sequence %d, and only those (a line removed, or another "+
			"event of the log added with its proof against this checkpoint, verifies alike); where "+
			"the log can be read, search it with 'sequence < %d' added to the filter and compare", up, up))
	}
	return lines
}

// lineObject is a line's members if it is one JSON object, read whole as aiaudit reads it
// (a name twice in one object or an integer spelt -0, at any depth, makes it a malformed
// line): with a member named scope it is a scope line, else with one named seal a seal
// line. A lone surrogate escaped in it is the scope's problem (parseScope), as in aiaudit.
// The line is read once for both names and without a copy (json.Valid, not a Decoder):
// each read of a line of hundreds of MiB took seconds and its size again in memory.
func lineObject(text []byte) ([]member, bool) {
	if !utf8.Valid(text) || !json.Valid(text) || jsonKind(text) != "an object" || !readsWhole(text) {
		return nil, false
	}
	members, err := listMembers(text, false)
	return members, err == nil
}

// hasMember reports whether an object has a member of that name.
func hasMember(members []member, name string) bool {
	return slices.ContainsFunc(members, func(m member) bool { return m.name == name })
}

// maxIntegerDigits is the longest integer aiaudit's parser reads (Python's own limit).
const maxIntegerDigits = 4300

// maxDepth is the deepest arrays and objects nest in what aiaudit reads: its parser stops
// near Python's recursion limit (about 1,000 levels, less its caller's frames), this one
// at 10,000, so both refuse past 500 in the same words. An event nests a few dozen levels.
const maxDepth = 500

// nestedTooDeep reports whether the brackets outside strings nest deeper than maxDepth,
// counted on the bytes before they are parsed, as aiaudit counts them (an unterminated
// string runs to the end).
func nestedTooDeep(text []byte) bool {
	if bytes.Count(text, []byte("["))+bytes.Count(text, []byte("{")) <= maxDepth {
		return false
	}
	depth, inString, escaped := 0, false, false
	for _, c := range text {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			if depth++; depth > maxDepth {
				return true
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return false
}

// readsWhole reports whether valid JSON nests at most maxDepth deep and holds no name twice
// in one object, no integer spelt -0 and none of more than maxIntegerDigits digits, at any
// depth: aiaudit's parser refuses each, the line then being no scope.
func readsWhole(value []byte) bool {
	if nestedTooDeep(value) {
		return false
	}
	decoder := json.NewDecoder(bytes.NewReader(value))
	decoder.UseNumber()
	type open struct {
		names map[string]bool // nil: an array
		name  bool            // an object's next token is a name (or its end)
	}
	var stack []open
	valueRead := func() {
		if n := len(stack); n > 0 && stack[n-1].names != nil {
			stack[n-1].name = true
		}
	}
	for {
		token, err := decoder.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		if n := len(stack); n > 0 && stack[n-1].name {
			if name, ok := token.(string); ok {
				if stack[n-1].names[name] {
					return false
				}
				stack[n-1].names[name], stack[n-1].name = true, false
				continue
			}
		}
		switch t := token.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, open{names: map[string]bool{}, name: true})
			case '[':
				stack = append(stack, open{})
			default:
				stack = stack[:len(stack)-1]
				valueRead()
			}
		case json.Number:
			digits := strings.TrimPrefix(string(t), "-")
			if t == "-0" || (len(digits) > maxIntegerDigits && !strings.ContainsAny(digits, ".eE")) {
				return false
			}
			valueRead()
		default:
			valueRead()
		}
	}
}

// scopes is the bundle's scope line and what its lines refute of it.
type scopes struct {
	scope      *scope
	first      int  // the line of the first scope line (0: none)
	afterFirst bool // an event or seal line was read already
	held       map[uint64]bool
	text       []byte // the first scope line's bytes, without its line ending
}

// read reads a scope line: the scope if it is the bundle's first line, else why not.
func (s *scopes) read(members []member, number int, text []byte) string {
	if s.first != 0 {
		return fmt.Sprintf("a second scope line (line %d holds the first): an export writes one, so "+
			"bundles were joined", s.first)
	}
	if s.afterFirst {
		return "a scope line must be the bundle's first line (an export writes it first)"
	}
	s.first = number
	s.text = bytes.Clone(text) // the scanner's buffer is reused
	sc, err := parseScope(members, number)
	if err != nil {
		return "malformed scope: " + err.Error()
	}
	s.scope = sc
	return ""
}

// parseScope checks a scope line's fields in aiaudit's order and words.
func parseScope(members []member, number int) (*scope, error) {
	for _, m := range members {
		if loneSurrogate(m.raw) || loneSurrogate(m.value) {
			return nil, errors.New("the line escapes a lone surrogate (read elsewhere as U+FFFD)")
		}
	}
	var unknown []string
	var value json.RawMessage
	for _, m := range members {
		if m.name == "scope" {
			value = m.value
		} else {
			unknown = append(unknown, m.name)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown field %s: a scope line holds only 'scope'", pyRepr(slices.Min(unknown)))
	}
	if kind := jsonKind(value); kind != "an object" {
		return nil, fmt.Errorf("field 'scope' must be an object, not %s", kind)
	}
	fields, _ := objectMembers(value) // whole (readsWhole), without lone surrogates (above)
	byName := map[string]json.RawMessage{}
	for _, f := range fields {
		byName[f.name] = f.value
	}
	raw, ok := byName["action"]
	if !ok {
		return nil, errors.New("field 'action' is missing")
	}
	if kind := jsonKind(raw); kind != "a string" {
		return nil, fmt.Errorf("field 'action' must be a string, not %s", kind)
	}
	var action string
	_ = json.Unmarshal(raw, &action)
	own, ok := scopeOwn[action]
	if !ok {
		return nil, fmt.Errorf("action %s is not one of %s, %s", pyRepr(action), exportBundle, searchExport)
	}
	kinds := append(slices.Clone(scopeCommon), own...)
	var names []string
	for _, k := range kinds {
		names = append(names, k.name)
	}
	slices.Sort(names)
	unknown = nil
	for _, f := range fields {
		if !slices.Contains(names, f.name) {
			unknown = append(unknown, f.name)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown field %s: a %s scope holds %s", pyRepr(slices.Min(unknown)), action,
			strings.Join(names, ", "))
	}
	sc := &scope{line: number, action: action, strings: map[string]string{}, ints: map[string]uint64{}}
	for _, k := range kinds {
		raw, ok := byName[k.name]
		if !ok {
			return nil, fmt.Errorf("field %s is missing", pyRepr(k.name))
		}
		if kind := jsonKind(raw); kind != k.kind {
			return nil, fmt.Errorf("field %s must be %s, not %s", pyRepr(k.name), k.kind, kind)
		}
		if k.kind == "an integer" {
			n, err := strconv.ParseUint(string(raw), 10, 64)
			if err != nil || n > maxInt63 {
				return nil, fmt.Errorf("field %s must be from 0 to %d, not %s", pyRepr(k.name), maxInt63, raw)
			}
			sc.ints[k.name] = n
		} else {
			var text string
			_ = json.Unmarshal(raw, &text)
			sc.strings[k.name] = text
		}
	}
	sc.logID = sc.strings["log_id"]
	if content := sc.strings["content"]; contentSaid[content] == "" {
		return nil, fmt.Errorf("content %s is not one of 'included', 'left out: --no-content', "+
			"'withheld: no content.read'", pyRepr(content))
	}
	size := sc.ints["tree_size"]
	if action == searchExport && sc.ints["up_to_sequence"] > size {
		return nil, fmt.Errorf("up_to_sequence %d is past tree_size %d", sc.ints["up_to_sequence"], size)
	}
	if start, end := sc.ints["start"], sc.ints["end"]; action == exportBundle && !(start < end && end <= size) {
		return nil, fmt.Errorf("start %d and end %d are no range within tree_size %d", start, end, size)
	}
	return sc, nil
}

// hold notes a line's sequence, read whole, if it is of the scope's log (for incomplete).
func (s *scopes) hold(line bundleLine) {
	if s.scope != nil && line.LogID == s.scope.logID {
		s.held[*line.Sequence] = true
	}
}

// refutedBy names what of the scope a line refutes: another log, a sequence outside it.
func (s *scopes) refutedBy(line bundleLine) []string {
	sc := s.scope
	if sc == nil {
		return nil
	}
	if line.LogID != sc.logID {
		return []string{fmt.Sprintf("log %s is not the scope's log %s (line %d)", pyRepr(line.LogID), pyRepr(sc.logID), sc.line)}
	}
	var whats []string
	a, b := sc.span()
	switch seq := *line.Sequence; {
	case a <= seq && seq < b:
	case sc.action == searchExport:
		whats = append(whats, fmt.Sprintf("sequence %d is not below the scope's up_to_sequence %d (line %d)", seq, b, sc.line))
	default:
		whats = append(whats, fmt.Sprintf("sequence %d is not within the scope's sequences %d..%d (line %d)", seq, a, b-1, sc.line))
	}
	// Neither writer puts content in a line when the scope says it was left out or
	// withheld: a scope edited to say so would have stripped lines read as withheld.
	if content := sc.strings["content"]; line.Salt != nil && content != "included" {
		whats = append(whats, fmt.Sprintf("the line holds content, though the scope says %s (line %d)", pyRepr(content), sc.line))
	}
	return whats
}

// incomplete names a range export (start..end) that lacks some of its range: lines removed.
func (s *scopes) incomplete() string {
	sc := s.scope
	if sc == nil || sc.action != exportBundle {
		return ""
	}
	start, end := sc.ints["start"], sc.ints["end"]
	held := uint64(0)
	for seq := range s.held {
		if start <= seq && seq < end {
			held++
		}
	}
	want := end - start
	if held == want {
		return ""
	}
	return fmt.Sprintf("the scope's sequences %d..%d are %d event(s) of log %s, and the bundle holds %d of "+
		"them: %d missing", start, end-1, want, pyRepr(sc.logID), held, want-held)
}
