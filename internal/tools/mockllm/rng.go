package mockllm

// rng is a splitmix64 generator. Each request gets its own generator
// derived from the seed and the request's sequence number, so draws need
// no locking and draw i depends only on (seed, i).
type rng struct{ state uint64 }

func newRNG(seed, seq uint64) rng {
	r := rng{state: seed}
	r.state ^= mix64(seq * 0x9e3779b97f4a7c15)
	return r
}

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	return mix64(r.state)
}

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float64 returns a uniform value in [0,1).
func (r *rng) float64() float64 {
	return float64(r.next()>>11) / (1 << 53)
}
