# syntax=docker/dockerfile:1
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/volley ./internal/tools/cmd/mockllm

FROM alpine:3.22
RUN apk add --no-cache ca-certificates tzdata wget && adduser -D -H -u 10001 volley
COPY --from=build /out/volley /out/mockllm /usr/local/bin/
USER volley
ENV VOLLEY_ADDR=:8080
EXPOSE 8080
ENTRYPOINT []
CMD ["volley", "serve"]
