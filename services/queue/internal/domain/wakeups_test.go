package domain

import "testing"

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestWakeups(t *testing.T) {
	w := NewWakeups()
	a1, doneA1 := w.subscribe("acme")
	a2, doneA2 := w.subscribe("acme")
	g, doneG := w.subscribe("globex")
	w.Notify("acme")
	if !closed(a1) || !closed(a2) || closed(g) {
		t.Fatal("Notify(acme) must wake acme's waiters only")
	}
	doneA1()
	doneA2()
	// A waiter that subscribes after a Notify waits for the next one.
	a3, doneA3 := w.subscribe("acme")
	if closed(a3) {
		t.Fatal("a new waiter woke from an old Notify")
	}
	w.NotifyAll()
	if !closed(a3) || !closed(g) {
		t.Fatal("NotifyAll must wake every waiter")
	}
	doneA3()
	doneG()
	// Waiters that leave without a Notify leave nothing behind.
	_, done := w.subscribe("initech")
	done()
	if len(w.tenants) != 0 {
		t.Errorf("%d tenants still tracked after every waiter left", len(w.tenants))
	}
	w.Stop()
	w.Stop() // idempotent
	if !closed(w.Stopped()) {
		t.Error("Stop did not close Stopped")
	}
}
