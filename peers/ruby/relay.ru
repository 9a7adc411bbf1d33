# frozen_string_literal: true
#
# peers/ruby/relay.ru - the relay app (relay_core.rb) as a Rack app, served by Puma:
#   RELAY_UPSTREAM=127.0.0.1:PORT puma -t 5:5 -b tcp://127.0.0.1:0 peers/ruby/relay.ru
# Each request holds one Puma thread for the whole stream: the body's #each runs the
# upstream call and yields every event, which Puma writes out at once (chunked).

require_relative 'relay_core'

Relay.upstream = ENV.fetch('RELAY_UPSTREAM')

# The streamed answer: Puma calls #each once and writes each event as it is yielded.
class RelayBody
  def initialize(body, index)
    @body = body
    @index = index
  end

  def each(&block)
    Relay.stream(@body, @index, &block)
  end
end

run(lambda do |env|
  len = env['CONTENT_LENGTH']
  bad = Relay.check(env['REQUEST_METHOD'], env['PATH_INFO'], len && len.to_i)
  next [bad[0], bad[1], [bad[2]]] if bad

  body = env['rack.input'].read
  bad = Relay.check_body(body)
  next [bad[0], bad[1], [bad[2]]] if bad

  [200, { 'content-type' => 'text/event-stream', 'cache-control' => 'no-cache' },
   RelayBody.new(body, env['HTTP_X_MOCK_REQUEST_INDEX'])]
end)
