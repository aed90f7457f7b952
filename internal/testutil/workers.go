package testutil

import "sync"

// Workers runs goroutines that each repeat a step until Halt: the load a
// test keeps up while something else happens (a kill, a full disk). Its
// zero value is ready to use.
type Workers struct {
	once sync.Once
	stop chan struct{}
	wg   sync.WaitGroup
}

func (w *Workers) init() { w.once.Do(func() { w.stop = make(chan struct{}) }) }

// Repeat calls f(0), f(1), ... on a goroutine of its own until Halt; a
// step under way is finished first.
func (w *Workers) Repeat(f func(i int)) {
	w.init()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			f(i)
		}
	}()
}

// Halt stops every goroutine Repeat started and waits until they return.
// It may be called once.
func (w *Workers) Halt() {
	w.init()
	close(w.stop)
	w.wg.Wait()
}
