#!/usr/bin/env ruby
# frozen_string_literal: true
#
# peers/ruby/relay_async.rb - the relay app (relay_core.rb) on an Async::HTTP server, the
# engine under Falcon (Falcon itself is not packaged in Debian 12): one reactor thread, a
# fiber per connection, and the app's plain Net::HTTP call to the LLM made concurrent by
# the Fiber scheduler that Async sets.
#   ruby peers/ruby/relay_async.rb --upstream 127.0.0.1:PORT [--listen 127.0.0.1:0]
# Prints "relay-async listening on 127.0.0.1:PORT" when ready; SIGTERM or SIGINT stops
# it. Exit status 2 on bad usage.

require 'optparse'
require 'async'
require 'async/http/server'
require 'async/http/endpoint'
require 'async/http/body/writable'
require 'async/io/shared_endpoint'
require 'protocol/http/response'
require_relative 'relay_core'

def usage_error(msg)
  warn "relay_async.rb: #{msg}"
  exit 2
end

listen = '127.0.0.1:0'
upstream = nil
begin
  OptionParser.new do |p|
    p.banner = 'usage: ruby peers/ruby/relay_async.rb --upstream H:P [--listen H:P]'
    p.on('--upstream H:P', 'the LLM (mock-llm), loopback IPv4') { |v| upstream = v }
    p.on('--listen H:P', 'loopback address (default 127.0.0.1:0: pick a port)') { |v| listen = v }
    p.on('--help', 'this text') { puts p; exit 0 }
  end.parse!(ARGV)
rescue OptionParser::ParseError => e
  usage_error(e.message)
end
usage_error("unexpected argument '#{ARGV.first}'") unless ARGV.empty?
begin
  Relay.upstream = upstream
rescue ArgumentError => e
  usage_error(e.message)
end
lhost, lport = listen.split(':', 2)
usage_error("bad --listen '#{listen}' (want 127.x.x.x:PORT)") unless
  lhost =~ /\A127\.\d{1,3}\.\d{1,3}\.\d{1,3}\z/ && lport =~ /\A\d{1,5}\z/

def answer(status, headers, body)
  Protocol::HTTP::Response[status, headers.to_a, [body]]
end

app = lambda do |request|
  # protocol-http moves Content-Length into the body: a body without a length is a
  # chunked upload (refused, as by the C relay) or none at all
  bad = Relay.check(request.method, request.path, request.body&.length)
  next answer(*bad) if bad

  body = request.read || +''
  bad = Relay.check_body(body)
  next answer(*bad) if bad

  index = request.headers['x-mock-request-index']
  index = index.to_s if index
  out = Async::HTTP::Body::Writable.new
  # The stream is written by a task of its own while the server sends what it gets.
  Async do
    Relay.stream(body, index) { |ev| out.write(ev) }
  ensure
    out.close
  end
  Protocol::HTTP::Response[200, [%w[content-type text/event-stream], %w[cache-control no-cache]], out]
end

stop = false
%w[TERM INT].each { |s| Signal.trap(s) { stop = true } }

Async do |task|
  endpoint = Async::HTTP::Endpoint.parse("http://#{lhost}:#{lport}")
  bound = Async::IO::SharedEndpoint.bound(endpoint)
  port = bound.wrappers.first.to_io.local_address.ip_port
  server = Async::HTTP::Server.new(app, bound, protocol: endpoint.protocol, scheme: endpoint.scheme)
  serving = task.async { server.run }
  $stdout.puts "relay-async listening on #{lhost}:#{port}"
  $stdout.flush
  # A signal handler cannot wake the reactor: look at the flag ten times a second.
  task.sleep(0.1) until stop
  serving.stop
  bound.close
end
