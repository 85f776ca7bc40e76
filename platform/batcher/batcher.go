// Package batcher collects items from many goroutines and hands them to a
// sink in batches, without making the producers wait. It is how services
// report access decisions to tenancy: a request must never block on that.
//
// Flush gives read-your-writes where it matters (tenancy's stats): it returns
// once everything added before it has been delivered, and concurrent flushes
// share one delivery (group commit).
package batcher

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/echopilot/echopilot/platform/backoff"
)

// Sink delivers one batch. It is retried on error, so it must be idempotent
// or accept duplicates.
type Sink[T any] func(ctx context.Context, batch []T) error

// Observers see what happened to items. Nil fields are skipped.
type Observers[T any] struct {
	Delivered func(items []T)
	// Undelivered gets items given up on: the buffer was full or delivery
	// kept failing. Nothing leaves the batcher without passing one of these.
	Undelivered func(items []T)
}

// Options tune a Batcher; zero values take the defaults.
type Options[T any] struct {
	MaxBatch   int           // items per delivery (default 500)
	Buffer     int           // items waiting before Add drops (default 10000)
	MaxWait    time.Duration // how long a partial batch waits (default 50ms)
	Attempts   int           // deliveries tried per batch (default 5)
	RetryDelay time.Duration // first backoff; doubles with jitter (default 100ms)
	// AttemptTimeout bounds one delivery (default 5s).
	AttemptTimeout time.Duration
	Observers      Observers[T]
}

type entry[T any] struct {
	item  T
	flush chan error // non-nil marks a flush request instead of an item
}

// Batcher is safe for concurrent use. Start it with Run.
type Batcher[T any] struct {
	sink Sink[T]
	opt  Options[T]
	log  *zap.Logger
	in   chan entry[T]
	done chan struct{}
	once sync.Once
}

// New returns a Batcher delivering to sink.
func New[T any](sink Sink[T], log *zap.Logger, opt Options[T]) *Batcher[T] {
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 500
	}
	if opt.Buffer <= 0 {
		opt.Buffer = 10000
	}
	if opt.MaxWait <= 0 {
		opt.MaxWait = 50 * time.Millisecond
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 5
	}
	if opt.RetryDelay <= 0 {
		opt.RetryDelay = 100 * time.Millisecond
	}
	if opt.AttemptTimeout <= 0 {
		opt.AttemptTimeout = 5 * time.Second
	}
	return &Batcher[T]{sink: sink, opt: opt, log: log, in: make(chan entry[T], opt.Buffer), done: make(chan struct{})}
}

// Add queues item without blocking. A full buffer drops the item and counts it.
func (b *Batcher[T]) Add(item T) {
	select {
	case b.in <- entry[T]{item: item}:
	default:
		b.observe(b.opt.Observers.Undelivered, []T{item})
		b.log.Warn("batcher buffer full: item dropped and counted")
	}
}

// Flush waits until every item added before the call has been delivered (or
// given up on). It returns the delivery error of the batch that held them.
func (b *Batcher[T]) Flush(ctx context.Context) error {
	ch := make(chan error, 1)
	select {
	case b.in <- entry[T]{flush: ch}:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return errors.New("batcher stopped")
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run delivers batches until ctx ends, then delivers what is left (bounded by
// drainTimeout) and returns.
func (b *Batcher[T]) Run(ctx context.Context, drainTimeout time.Duration) {
	defer b.once.Do(func() { close(b.done) })
	batch := make([]T, 0, b.opt.MaxBatch)
	var waiters []chan error
	timer := time.NewTimer(b.opt.MaxWait)
	timer.Stop()
	timerOn := false
	// Deliveries in flight finish even when ctx ends; the drain below bounds them.
	live := context.WithoutCancel(ctx)

	deliver := func(dctx context.Context) {
		err := b.deliver(dctx, batch)
		for _, w := range waiters {
			w <- err
		}
		batch, waiters = batch[:0], waiters[:0]
		if timerOn {
			timer.Stop()
			timerOn = false
		}
	}
	take := func(e entry[T]) (full bool) {
		if e.flush != nil {
			waiters = append(waiters, e.flush)
			return true
		}
		batch = append(batch, e.item)
		if !timerOn {
			timer.Reset(b.opt.MaxWait)
			timerOn = true
		}
		return len(batch) >= b.opt.MaxBatch
	}

	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			defer cancel()
			for {
				select {
				case e := <-b.in:
					if take(e) {
						deliver(dctx)
					}
				default:
					deliver(dctx)
					return
				}
			}
		case e := <-b.in:
			full := take(e)
			// Take whatever else is already queued so concurrent flushers share
			// one delivery.
		drain:
			for !full {
				select {
				case e2 := <-b.in:
					full = take(e2)
				default:
					break drain
				}
			}
			if full {
				deliver(live)
			}
		case <-timer.C:
			timerOn = false
			deliver(live)
		}
	}
}

func (b *Batcher[T]) deliver(ctx context.Context, batch []T) error {
	if len(batch) == 0 {
		return nil
	}
	// Uncapped: Attempts bounds the retries.
	retry := backoff.Policy{Base: b.opt.RetryDelay, Jitter: backoff.Equal}
	var err error
	for attempt := 1; attempt <= b.opt.Attempts; attempt++ {
		actx, cancel := context.WithTimeout(ctx, b.opt.AttemptTimeout)
		err = b.sink(actx, batch)
		cancel()
		if err == nil {
			b.observe(b.opt.Observers.Delivered, batch)
			return nil
		}
		if attempt == b.opt.Attempts || ctx.Err() != nil {
			break
		}
		b.log.Warn("batch delivery failed; retrying", zap.Error(err), zap.Int("attempt", attempt), zap.Int("items", len(batch)))
		select {
		case <-time.After(retry.Delay(attempt)):
		case <-ctx.Done():
		}
	}
	b.observe(b.opt.Observers.Undelivered, batch)
	b.log.Error("batch not delivered; items counted as undelivered", zap.Error(err), zap.Int("items", len(batch)))
	return err
}

func (b *Batcher[T]) observe(f func([]T), items []T) {
	if f != nil {
		f(items)
	}
}
