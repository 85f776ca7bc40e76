package batcher

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

type recorder struct {
	mu      sync.Mutex
	items   []int
	batches int
	fail    atomic.Int32 // deliveries left to fail
}

func (r *recorder) sink(_ context.Context, batch []int) error {
	if r.fail.Load() > 0 {
		r.fail.Add(-1)
		return errors.New("down")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, batch...)
	r.batches++
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

func start[T any](t *testing.T, b *Batcher[T]) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx, time.Second); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestFlushSeesEverythingAddedBefore(t *testing.T) {
	var r recorder
	b := New(r.sink, zaptest.NewLogger(t), Options[int]{MaxWait: time.Hour})
	start(t, b)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				b.Add(i)
				if i%50 == 0 {
					if err := b.Flush(context.Background()); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.count(); got != 2000 {
		t.Fatalf("delivered %d, want 2000", got)
	}
	if r.batches >= 2000 {
		t.Fatalf("no batching: %d deliveries for 2000 items", r.batches)
	}
}

func TestPartialBatchDeliveredAfterMaxWait(t *testing.T) {
	var r recorder
	b := New(r.sink, zaptest.NewLogger(t), Options[int]{MaxWait: 10 * time.Millisecond})
	start(t, b)
	b.Add(1)
	deadline := time.Now().Add(5 * time.Second)
	for r.count() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("partial batch never delivered")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRetriesThenCountsUndelivered(t *testing.T) {
	var r recorder
	var delivered, undelivered atomic.Int64
	obs := Observers[int]{
		Delivered:   func(items []int) { delivered.Add(int64(len(items))) },
		Undelivered: func(items []int) { undelivered.Add(int64(len(items))) },
	}
	b := New(r.sink, zaptest.NewLogger(t), Options[int]{Attempts: 3, RetryDelay: time.Millisecond, Observers: obs, MaxWait: time.Hour})
	start(t, b)

	r.fail.Store(2) // two failures, third attempt succeeds
	b.Add(1)
	if err := b.Flush(context.Background()); err != nil {
		t.Fatalf("retry did not recover: %v", err)
	}
	r.fail.Store(3) // every attempt fails
	b.Add(2)
	b.Add(3)
	if err := b.Flush(context.Background()); err == nil {
		t.Fatal("flush reported success for a lost batch")
	}
	if delivered.Load() != 1 || undelivered.Load() != 2 {
		t.Fatalf("delivered=%d undelivered=%d, want 1 and 2", delivered.Load(), undelivered.Load())
	}
}

func TestFullBufferDropsAreCounted(t *testing.T) {
	var undelivered atomic.Int64
	b := New(func(context.Context, []int) error { return nil }, zaptest.NewLogger(t),
		Options[int]{Buffer: 4, Observers: Observers[int]{Undelivered: func(items []int) { undelivered.Add(int64(len(items))) }}})
	// Not running: the buffer fills and Add must still return at once.
	for i := 0; i < 10; i++ {
		b.Add(i)
	}
	if undelivered.Load() != 6 {
		t.Fatalf("undelivered = %d, want 6", undelivered.Load())
	}
}

func TestStopDrainsQueuedItems(t *testing.T) {
	var r recorder
	b := New(r.sink, zaptest.NewLogger(t), Options[int]{MaxWait: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	for i := 0; i < 10; i++ {
		b.Add(i)
	}
	cancel()
	b.Run(ctx, time.Second)
	if r.count() != 10 {
		t.Fatalf("drained %d of 10", r.count())
	}
}
