// Package watchdog decides, request by request, which inference backend
// serves: a pure state machine over backend states (healthy, suspect, failed,
// probation), redundancy policies (hot, warm, cold) and fail-back rules. Time
// and events come in; plans and transitions come out. It never starts a
// goroutine, reads the clock or does I/O.
package watchdog
