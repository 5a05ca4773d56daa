package main

import (
	"context"
	"fmt"
	"os"
)

// alternate dispatches the same batch as plain and as variant, one after the other, e.runs times,
// and returns both series of runs. accept checks a variant run beyond the batch's own checks. The
// series end at the first error; the rows of what ran can still be made from them.
func (e *env) alternate(ctx context.Context, plain, variant dispatchSpec, accept func(dispatchRun) error) (without, with []dispatchRun, err error) {
	lines, conc := plain.size(e.quick)
	in, err := writeDispatchInput(e.workDir, plain.name, lines)
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(in.path)
	var fileID string
	defer func() {
		if fileID != "" {
			e.removeInputFile(ctx, fileID)
		}
	}()
	for i := range e.runs {
		r, err := plain.runOnce(ctx, e, in, &fileID, conc)
		if err != nil {
			return without, with, fmt.Errorf("run %d as is: %w", i+1, err)
		}
		without = append(without, r)
		v, err := variant.runOnce(ctx, e, in, &fileID, conc)
		if err == nil {
			err = accept(v)
		}
		if err != nil {
			return without, with, fmt.Errorf("run %d: %w", i+1, err)
		}
		with = append(with, v)
		e.log.Info("run done", "scenario", plain.name, "run", i+1, "as_is_req_s", fmt.Sprintf("%.0f", r.rate()),
			"variant_req_s", fmt.Sprintf("%.0f", v.rate()), "load", loadAverage())
	}
	return without, with, nil
}
