package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/volleyhq/volley/internal/ids"
)

// The parts of every generated line around the custom_id's number and the message text.
const (
	linePrefix = `{"custom_id":"req-`
	lineMiddle = `","method":"POST","url":"/v1/chat/completions","body":`
	bodyPrefix = `{"model":"bench-model","messages":[{"role":"user","content":"`
	bodySuffix = `"}],"max_tokens":64}`
	lineSuffix = "}\n"

	benchURL   = "/v1/chat/completions"
	benchModel = "bench-model"
)

// dataset is a generated batch input file and the same rows in PostgreSQL's binary COPY format.
type dataset struct {
	jsonlPath string
	copyPath  string
	columns   []string // the columns of the COPY file, in order
	bytes     int64    // size of the JSONL file
	lines     int
}

func (d dataset) remove() {
	_ = os.Remove(d.jsonlPath)
	_ = os.Remove(d.copyPath)
}

// request is one generated line and the values Volley stores for it.
type request struct {
	line      int32
	customID  string
	bodyStart int32 // byte offsets of the body object in the line; end exclusive
	bodyEnd   int32
	data      []byte // the whole line, '\n' included
}

// generateDataset writes lines requests of about lineBytes each into dir, deterministically, along
// with a binary COPY file of the rows Volley would store for them under a file id of its own.
func generateDataset(ctx context.Context, dir, name string, lines, lineBytes int, cols []copyColumn) (_ dataset, err error) {
	d := dataset{
		jsonlPath: filepath.Join(dir, name+".jsonl"),
		copyPath:  filepath.Join(dir, name+".copy"),
		lines:     lines,
	}
	for _, c := range cols {
		d.columns = append(d.columns, c.name)
	}
	defer func() {
		if err != nil {
			d.remove()
		}
	}()
	jf, err := os.Create(d.jsonlPath)
	if err != nil {
		return d, fmt.Errorf("create input file: %w", err)
	}
	defer jf.Close()
	cf, err := os.Create(d.copyPath)
	if err != nil {
		return d, fmt.Errorf("create COPY file: %w", err)
	}
	defer cf.Close()

	jw := bufio.NewWriterSize(jf, 1<<20)
	cw := newCopyWriter(bufio.NewWriterSize(cf, 1<<20), cols)
	fileID, _ := ids.New("file-")
	gen := newLineGen(uint64(lineBytes))
	for i := 1; i <= lines; i++ {
		if i%1000 == 0 && ctx.Err() != nil {
			return d, ctx.Err()
		}
		r := gen.next(i, lineBytes)
		if _, err := jw.Write(r.data); err != nil {
			return d, fmt.Errorf("write input file: %w", err)
		}
		d.bytes += int64(len(r.data))
		if err := cw.writeRow(fileID, r); err != nil {
			return d, err
		}
	}
	// Synced so that writing them back does not compete with the timed runs.
	if err := errors.Join(jw.Flush(), cw.finish(), jf.Sync(), cf.Sync()); err != nil {
		return d, fmt.Errorf("write %s: %w", name, err)
	}
	return d, errors.Join(jf.Close(), cf.Close())
}

// lineGen makes request lines with varied text from a fixed seed.
type lineGen struct {
	rng  *rand.Rand
	text []byte
	line []byte
}

func newLineGen(seed uint64) *lineGen {
	return &lineGen{rng: rand.New(rand.NewPCG(seed, 0x766f6c6c6579))}
}

// next returns line n, of about lineBytes (±10% of the message text).
func (g *lineGen) next(n, lineBytes int) request {
	num := strconv.Itoa(n)
	overhead := len(linePrefix) + len(num) + len(lineMiddle) + len(bodyPrefix) + len(bodySuffix) + len(lineSuffix)
	target := max(16, lineBytes-overhead)
	jitter := target / 10
	target += g.rng.IntN(2*jitter+1) - jitter

	l := append(g.line[:0], linePrefix...)
	l = append(l, num...)
	l = append(l, lineMiddle...)
	start := len(l)
	l = append(l, bodyPrefix...)
	l = append(l, g.message(target)...)
	l = append(l, bodySuffix...)
	end := len(l)
	l = append(l, lineSuffix...)
	g.line = l
	return request{line: int32(n), customID: "req-" + num, bodyStart: int32(start), bodyEnd: int32(end), data: l}
}

// words and (rarely) extras make up the messages: plain prose with some UTF-8 and JSON escapes.
var (
	words = strings.Fields(`the a of and to in is that for it as was with on be by at this from or
		which an are but not have has had were their all one there been more will would can
		summarise translate explain compare describe classify extract rewrite answer list
		customer invoice shipment warranty refund subscription account password delivery order
		report quarterly revenue growth margin forecast budget region market product feature
		model request response latency throughput batch queue worker database index table
		please carefully briefly politely concise detailed formal friendly technical simple
		question paragraph sentence document article review comment email ticket note summary`)
	extras = []string{`café`, `naïve`, `déjà vu`, `—`, `“quoted”`, `\"escaped\"`, `\n`, `\t`,
		`€42.50`, `日本語`, `Größe`, `\\path\\to\\file`, `\u00e9`, `😀`, `(see §3.2)`, `x<y && y>z`}
	endings = []string{". ", "? ", "! ", "; "}
)

// message returns JSON string content (without quotes) of at least target bytes.
func (g *lineGen) message(target int) []byte {
	t := g.text[:0]
	sentence := 0
	for len(t) < target {
		if sentence == 0 {
			sentence = 6 + g.rng.IntN(14)
			if len(t) > 0 {
				t = append(t[:len(t)-1], endings[g.rng.IntN(len(endings))]...)
			}
		}
		if g.rng.IntN(25) == 0 {
			t = append(t, extras[g.rng.IntN(len(extras))]...)
		} else {
			t = append(t, words[g.rng.IntN(len(words))]...)
		}
		t = append(t, ' ')
		sentence--
	}
	g.text = t
	return t
}

// copyColumn is a column of file_lines and its type.
type copyColumn struct {
	name string
	oid  uint32
}

// copyWriter writes rows in PostgreSQL's binary COPY format, encoding values exactly as pgx's
// CopyFrom does (pgtype's binary encoders for the columns' types).
type copyWriter struct {
	w    *bufio.Writer
	m    *pgtype.Map
	cols []copyColumn
	buf  []byte
	err  error
}

func newCopyWriter(w *bufio.Writer, cols []copyColumn) *copyWriter {
	c := &copyWriter{w: w, m: pgtype.NewMap(), cols: cols}
	c.buf = append(c.buf, "PGCOPY\n\377\r\n\000"...)
	c.buf = be32(c.buf, 0) // flags
	c.buf = be32(c.buf, 0) // header extension length
	return c
}

func (c *copyWriter) writeRow(fileID string, r request) error {
	c.buf = be16(c.buf, uint16(len(c.cols)))
	for _, col := range c.cols {
		v, err := columnValue(col.name, fileID, r)
		if err != nil {
			return err
		}
		lenAt := len(c.buf)
		c.buf = be32(c.buf, 0)
		out, err := c.m.Encode(col.oid, pgtype.BinaryFormatCode, v, c.buf)
		if err != nil {
			return fmt.Errorf("encode %s: %w", col.name, err)
		}
		if out == nil { // NULL
			c.buf = be32(c.buf[:lenAt], 0xFFFFFFFF)
			continue
		}
		c.buf = out
		setBE32(c.buf[lenAt:], uint32(len(c.buf)-lenAt-4))
	}
	_, err := c.w.Write(c.buf)
	c.buf = c.buf[:0]
	if err != nil {
		return fmt.Errorf("write COPY file: %w", err)
	}
	return nil
}

// finish writes the file trailer and flushes.
func (c *copyWriter) finish() error {
	c.buf = be16(c.buf, 0xFFFF)
	if _, err := c.w.Write(c.buf); err != nil {
		return err
	}
	return c.w.Flush()
}

// columnValue is the value Volley's upload handler stores in column name for r.
func columnValue(name, fileID string, r request) (any, error) {
	switch name {
	case "file_id":
		return fileID, nil
	case "line":
		return r.line, nil
	case "custom_id":
		return r.customID, nil
	case "url":
		return benchURL, nil
	case "model":
		return benchModel, nil
	case "body_start":
		return r.bodyStart, nil
	case "body_end":
		return r.bodyEnd, nil
	case "data":
		return r.data, nil
	}
	return nil, fmt.Errorf("file_lines has a column %q this benchmark cannot fill: teach columnValue about it", name)
}

func be16(b []byte, v uint16) []byte { return append(b, byte(v>>8), byte(v)) }

func be32(b []byte, v uint32) []byte { return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v)) }

func setBE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
