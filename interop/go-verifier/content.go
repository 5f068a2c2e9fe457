package main

import "fmt"

// contentField is a field of the event's schema that is content (marked
// sensitive_content in protos/aiaudit/common/v1/event.proto) or holds some, by its JSON
// name. content_schema.go lists them, generated from the protos by
// scripts/gen-protos.sh (--check fails when the list is stale).
type contentField struct {
	name     string
	message  int  // the index in contentMessages of the message it holds, or isContent
	repeated bool // an array of messages
	bytes    bool // content of a bytes field: base64 in the event's JSON
}

// isContent is contentField.message of a field that is content.
const isContent = -1

// commitment is one content commitment of a canonical event, at its content path; bytes
// for a bytes field (inline media data), whose content is base64.
type commitment struct {
	path  string
	value any
	bytes bool
}

// commitments lists a canonical event's content commitments in aiaudit's order (the
// schema's fields in turn, arrays in order). A commitment is whatever value a field
// marked sensitive_content holds (contentMessages, generated from the schema), as
// aiaudit finds them: found by its form (hmac-sha256: and 64 hex digits), a commitment
// edited was content without a commitment here and a mismatch there.
func commitments(node any, message int, path string) []commitment {
	object, ok := node.(map[string]any)
	if !ok {
		return nil
	}
	var list []commitment
	for _, field := range contentMessages[message] {
		value, ok := object[field.name]
		if !ok {
			continue
		}
		here := field.name
		if path != "" {
			here = path + "." + field.name
		}
		switch {
		case field.message == isContent:
			list = append(list, commitment{here, value, field.bytes})
		case field.repeated:
			items, _ := value.([]any)
			for i, item := range items {
				list = append(list, commitments(item, field.message, fmt.Sprintf("%s[%d]", here, i))...)
			}
		default:
			list = append(list, commitments(value, field.message, here)...)
		}
	}
	return list
}
