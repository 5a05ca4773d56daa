package chaos

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/volleyhq/volley/api"
)

// Operation is one route of openapi.yaml.
type Operation struct {
	Method, Path string
	ID           string
	// Public operations have an empty security requirement (no key needed).
	Public bool
	// PathParams are the names of the path's {parameters}, in order.
	PathParams []string
	// BodyTypes are the request body's media types, if it has one.
	BodyTypes []string
	// Admin operations (x-volley-admin) exist only for admin keys: any other key gets 404.
	Admin bool
}

func (o Operation) String() string { return o.Method + " " + o.Path }

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// Operations enumerates every operation of the served spec (api.GetSwagger), sorted by path and
// method, so that routes added to openapi.yaml are covered without changing the suites.
func Operations() ([]Operation, error) {
	doc, err := api.GetSwagger()
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI spec: %w", err)
	}
	globalPublic := len(doc.Security) == 0
	var out []Operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			o := Operation{Method: strings.ToUpper(method), Path: path, ID: op.OperationID, Public: globalPublic}
			if v, ok := op.Extensions["x-volley-admin"].(bool); ok {
				o.Admin = v
			}
			if op.Security != nil {
				o.Public = len(*op.Security) == 0
			}
			for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
				o.PathParams = append(o.PathParams, m[1])
			}
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				for mt := range op.RequestBody.Value.Content {
					o.BodyTypes = append(o.BodyTypes, mt)
				}
				sort.Strings(o.BodyTypes)
			}
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out, nil
}

// URL fills the path's parameters from values (a missing one becomes fallback(name)).
func (o Operation) URL(root string, values map[string]string, fallback func(string) string) string {
	return root + pathParam.ReplaceAllStringFunc(o.Path, func(m string) string {
		name := m[1 : len(m)-1]
		if v, ok := values[name]; ok {
			return v
		}
		return fallback(name)
	})
}
