// Command loadgen sends pre-serialised gRPC requests and records each call's latency.
//
// The benchmarks in bench/ measure the servers, so the client must cost the
// shared 2-core machine as little as possible: a Python gRPC client spends
// about 1 ms of CPU per call here, as much as a third of the server's. This
// one sends bytes prepared by the Python benchmark (no message building) and
// writes back the raw replies, which the benchmark parses and checks after
// the timed run.
//
// Input: -requests FILE, each request as a 4-byte big-endian length and its
// bytes. Output: -out FILE, per request in order: int64 latency in
// nanoseconds, int32 gRPC status code, 4-byte length and the reply bytes (or
// the status message when the code is not OK).
//
// With -rate R > 0 the calls are open loop: call i is due at start + i/R and
// its latency counts from that time (no coordinated omission), round-robin
// over -conns connections. With -rate 0 they are sequential on one connection.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// rawCodec passes message bytes through: requests are serialised already.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

type result struct {
	latency time.Duration
	code    int32
	body    []byte
}

func readRequests(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]byte
	var size [4]byte
	for {
		if _, err := io.ReadFull(f, size[:]); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: request %d: %w", path, len(out), err)
		}
		body := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(f, body); err != nil {
			return nil, fmt.Errorf("%s: request %d: %w", path, len(out), err)
		}
		out = append(out, body)
	}
}

func writeResults(path string, results []result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 16)
	for _, r := range results {
		binary.BigEndian.PutUint64(buf[0:8], uint64(r.latency.Nanoseconds()))
		binary.BigEndian.PutUint32(buf[8:12], uint32(r.code))
		binary.BigEndian.PutUint32(buf[12:16], uint32(len(r.body)))
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
		if _, err := f.Write(r.body); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func call(ctx context.Context, conn *grpc.ClientConn, method string, body []byte) (int32, []byte) {
	var reply []byte
	err := conn.Invoke(ctx, method, &body, &reply, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		s := status.Convert(err)
		return int32(s.Code()), []byte(s.Message())
	}
	return 0, reply
}

func run() error {
	addr := flag.String("addr", "", "server address, host:port (plaintext, loopback)")
	method := flag.String("method", "", "full method name, /package.Service/Method")
	token := flag.String("token", "", "bearer token sent as the authorization header")
	requests := flag.String("requests", "", "file of length-prefixed request bodies")
	out := flag.String("out", "", "file the results are written to")
	rate := flag.Float64("rate", 0, "calls per second, open loop; 0: sequential")
	conns := flag.Int("conns", 1, "connections (open loop only)")
	warmup := flag.Int("warmup", 1, "leading requests sent on each connection first, not timed")
	timeout := flag.Duration("timeout", 30*time.Second, "deadline of each call")
	flag.Parse()
	if *addr == "" || *method == "" || *requests == "" || *out == "" {
		return fmt.Errorf("-addr, -method, -requests and -out are required")
	}
	bodies, err := readRequests(*requests)
	if err != nil {
		return err
	}
	if len(bodies) <= *warmup {
		return fmt.Errorf("%d requests leave none to time after %d warm-up", len(bodies), *warmup)
	}
	if *rate == 0 {
		*conns = 1
	}
	md := metadata.Pairs("authorization", "Bearer "+*token)
	clients := make([]*grpc.ClientConn, *conns)
	for i := range clients {
		// grpc.NewClient gives every ClientConn a connection of its own.
		c, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer c.Close()
		clients[i] = c
	}
	newCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(metadata.NewOutgoingContext(context.Background(), md), *timeout)
	}
	for _, c := range clients {
		for _, body := range bodies[:*warmup] {
			ctx, cancel := newCtx()
			code, msg := call(ctx, c, *method, body)
			cancel()
			if code != 0 {
				return fmt.Errorf("warm-up call failed: code %d: %s", code, msg)
			}
		}
	}
	timed := bodies[*warmup:]
	results := make([]result, len(timed))
	if *rate == 0 {
		for i, body := range timed {
			ctx, cancel := newCtx()
			t := time.Now()
			code, reply := call(ctx, clients[0], *method, body)
			results[i] = result{time.Since(t), code, reply}
			cancel()
		}
	} else {
		var wg sync.WaitGroup
		start := time.Now()
		for i, body := range timed {
			due := start.Add(time.Duration(float64(i) / *rate * float64(time.Second)))
			time.Sleep(time.Until(due))
			wg.Add(1)
			go func(i int, body []byte, due time.Time) {
				defer wg.Done()
				ctx, cancel := newCtx()
				defer cancel()
				code, reply := call(ctx, clients[i%len(clients)], *method, body)
				results[i] = result{time.Since(due), code, reply}
			}(i, body, due)
		}
		wg.Wait()
	}
	return writeResults(*out, results)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
