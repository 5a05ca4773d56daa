package metrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Pool is a collector of a pgx connection pool's statistics.
type Pool struct {
	pool *pgxpool.Pool

	total, idle, acquired, max, constructing *prometheus.Desc
	acquires, emptyAcquires, canceled        *prometheus.Desc
	acquireWait                              *prometheus.Desc
}

// NewPool returns a collector of pool's statistics.
func NewPool(pool *pgxpool.Pool) *Pool {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_db_pool_"+name, help, nil, nil)
	}
	return &Pool{
		pool:          pool,
		total:         d("connections", "Connections open in the pool."),
		idle:          d("idle_connections", "Open connections not in use."),
		acquired:      d("acquired_connections", "Connections in use."),
		max:           d("max_connections", "The pool's size limit."),
		constructing:  d("constructing_connections", "Connections being opened."),
		acquires:      d("acquires_total", "Connections taken from the pool."),
		emptyAcquires: d("empty_acquires_total", "Acquires that had to wait because no connection was idle."),
		canceled:      d("canceled_acquires_total", "Acquires given up before a connection came."),
		acquireWait:   d("acquire_wait_seconds_total", "Time spent waiting for connections."),
	}
}

// Describe implements prometheus.Collector.
func (p *Pool) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{p.total, p.idle, p.acquired, p.max, p.constructing, p.acquires, p.emptyAcquires, p.canceled, p.acquireWait} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (p *Pool) Collect(ch chan<- prometheus.Metric) {
	s := p.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(p.total, float64(s.TotalConns()))
	gauge(p.idle, float64(s.IdleConns()))
	gauge(p.acquired, float64(s.AcquiredConns()))
	gauge(p.max, float64(s.MaxConns()))
	gauge(p.constructing, float64(s.ConstructingConns()))
	counter(p.acquires, float64(s.AcquireCount()))
	counter(p.emptyAcquires, float64(s.EmptyAcquireCount()))
	counter(p.canceled, float64(s.CanceledAcquireCount()))
	counter(p.acquireWait, s.AcquireDuration().Seconds())
}
