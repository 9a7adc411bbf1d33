# frozen_string_literal: true
#
# peers/ruby/relay_core.rb - the AI app of the relay workload, written once and served by
# Puma (relay.ru) and by an Async::HTTP server (relay_async.rb): a user POSTs a streaming
# chat completion, the app makes the same call to the LLM with plain Net::HTTP and relays
# the stream back to the user as SSE while it arrives (user -> app -> LLM). Per event it
# does what an app does to keep the answer (JSON.parse of the chunk), then writes the
# event on. The same protocol as the C relay (workloads/tools/wl_relay.c), so that
# build/bin/wl-llm drives every relay alike.

require 'json'
require 'net/http'
require_relative 'sse'

module Relay
  MAX_BODY = 1 << 20
  PATH = '/v1/chat/completions'

  class << self
    attr_reader :host, :port

    # "127.x.x.x:PORT" of the LLM; anything else raises ArgumentError.
    def upstream=(hostport)
      h, p = hostport.to_s.split(':', 2)
      unless h =~ /\A127\.\d{1,3}\.\d{1,3}\.\d{1,3}\z/ && p =~ /\A\d{1,5}\z/
        raise ArgumentError, "upstream must be 127.x.x.x:PORT (loopback only), got '#{hostport}'"
      end

      @host = h
      @port = p.to_i
    end
  end

  # An OpenAI-style error answer: [status, headers, body string].
  def self.error(status, message, type = 'invalid_request_error')
    [status, { 'content-type' => 'application/json', 'connection' => 'close' },
     JSON.generate({ error: { message: message, type: type, code: nil } })]
  end

  # Checks a request; returns an error answer, or nil when it is a streaming chat call.
  # length: the declared Content-Length (nil when absent); body: a lambda reading it.
  def self.check(method, path, length)
    return error(404, "only POST #{PATH} is relayed") unless path == PATH
    return error(405, 'use POST') unless method == 'POST'
    return error(411, 'Content-Length required') if length.nil?
    return error(413, 'request body too large') if length > MAX_BODY

    nil
  end

  # The body must be a JSON object asking for a stream.
  def self.check_body(body)
    j = JSON.parse(body)
    return error(400, 'this relay streams: set stream to true') unless j.is_a?(Hash) && j['stream'] == true

    nil
  rescue JSON::ParserError
    error(400, 'request body is not JSON')
  end

  # Calls the LLM and yields each event re-framed for the user ("data: ...\n\n"). An
  # upstream failure after the 200 went out is an error event, as OpenAI's own are.
  def self.stream(body, index, timeout: 120)
    Net::HTTP.start(@host, @port, open_timeout: timeout, read_timeout: timeout) do |http|
      req = Net::HTTP::Post.new(PATH, 'content-type' => 'application/json',
                                      'accept' => 'text/event-stream')
      req['x-mock-request-index'] = index if index
      req.body = body
      http.request(req) do |res|
        unless res.code == '200'
          res.read_body
          yield "data: #{JSON.generate({ error: { message: "the LLM answered #{res.code}",
                                                   type: 'upstream_error' } })}\n\n"
          return
        end
        sse = SSE.new
        done = false
        res.read_body do |chunk|
          next if done

          sse.feed(chunk) do |data|
            next if done

            if data == '[DONE]'
              done = true
            else
              JSON.parse(data) # what the app does with the answer: read the delta
            end
            yield "data: #{data}\n\n"
          end
        end
      end
    end
  rescue StandardError => e
    yield "data: #{JSON.generate({ error: { message: "relay failed: #{e.class}",
                                             type: 'upstream_error' } })}\n\n"
  end
end
