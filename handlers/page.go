package handlers

// page is one page of a list: rows were read with one more than limit, so that their count says
// whether another page follows. It renders the kept rows and names the first and last ids, as
// OpenAI's list envelope gives them (nil on an empty page).
type page[T any] struct {
	data            []T
	firstID, lastID *string
	hasMore         bool
}

func pageOf[R, T any](rows []R, limit int, render func(R) T, id func(R) string) page[T] {
	var p page[T]
	if p.hasMore = len(rows) > limit; p.hasMore {
		rows = rows[:limit]
	}
	p.data = make([]T, len(rows))
	for i, r := range rows {
		p.data[i] = render(r)
	}
	if len(rows) > 0 {
		first, last := id(rows[0]), id(rows[len(rows)-1])
		p.firstID, p.lastID = &first, &last
	}
	return p
}
