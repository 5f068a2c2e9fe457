package main

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// shownWriter writes what it is given with every unprintable character escaped, as
// aiaudit verify --bundle prints every line (Python's isprintable, ascii's escapes):
// event ids, log ids, field names and content paths come from the file, and a terminal
// control sequence in one (ESC, a C1 control, a bidi override) could print a fake
// summary over the real one. Each write is one line: its last line feed stays, any other
// is the file's (an event id "e\nline 9 ..." printed a forged line) and is escaped, as
// aiaudit escapes each line it prints whole.
type shownWriter struct{ w io.Writer }

func (s shownWriter) Write(p []byte) (int, error) {
	text, end := string(p), ""
	if body, ok := strings.CutSuffix(text, "\n"); ok {
		text, end = body, "\n"
	}
	if _, err := io.WriteString(s.w, shown(text)+end); err != nil {
		return 0, err
	}
	return len(p), nil
}

// shown is text with each unprintable character escaped as Python's ascii escapes it
// (\t, \n, \r, \x1b, \u202e, \U000e0001); a byte that is not UTF-8 as \xNN.
func shown(text string) string {
	out := make([]byte, 0, len(text))
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = fmt.Appendf(out, `\x%02x`, text[i])
		case unicode.IsPrint(r):
			out = append(out, text[i:i+size]...)
		case r == '\t':
			out = append(out, `\t`...)
		case r == '\n':
			out = append(out, `\n`...)
		case r == '\r':
			out = append(out, `\r`...)
		case r < 0x100:
			out = fmt.Appendf(out, `\x%02x`, r)
		case r < 0x10000:
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = fmt.Appendf(out, `\U%08x`, r)
		}
		i += size
	}
	return string(out)
}
