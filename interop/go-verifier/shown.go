package main

import (
	"fmt"
	"io"
	"unicode"
	"unicode/utf8"
)

// shownWriter writes what it is given with every unprintable character escaped, as
// aiaudit verify --bundle prints every line (Python's isprintable, ascii's escapes):
// event ids, log ids, field names and content paths come from the file, and a terminal
// control sequence in one (ESC, a C1 control, a bidi override) could print a fake
// summary over the real one. Line ends stay: each write is whole lines.
type shownWriter struct{ w io.Writer }

func (s shownWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(s.w, shown(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// shown is text with each unprintable character but the line feed escaped as Python's
// ascii escapes it (\t, \r, \x1b, \u202e, \U000e0001); a byte that is not UTF-8 as \xNN.
func shown(text string) string {
	out := make([]byte, 0, len(text))
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = fmt.Appendf(out, `\x%02x`, text[i])
		case r == '\n' || unicode.IsPrint(r):
			out = append(out, text[i:i+size]...)
		case r == '\t':
			out = append(out, `\t`...)
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
