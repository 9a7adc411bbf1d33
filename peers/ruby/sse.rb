# frozen_string_literal: true
#
# peers/ruby/sse.rb - one Server-Sent Events parser for the Ruby client and relays.

# Server-Sent Events, the WHATWG way: lines end in CRLF, LF or CR (a CR at the end of one
# chunk may be the first half of a CRLF), a blank line dispatches, data lines are joined
# with "\n", ':' starts a comment. Yields each event's data.
class SSE
  MAX = 1 << 20

  def initialize
    # bytes, whatever the chunks' encodings: a multi-byte character may be split anywhere
    @buf = String.new(capacity: 4096, encoding: Encoding::BINARY)
    @data = nil
  end

  def feed(chunk)
    @buf << chunk.b
    pos = 0
    while (m = /\r\n|\n|\r/.match(@buf, pos))
      # a lone CR at the very end may be followed by an LF in the next chunk
      break if m[0] == "\r" && m.end(0) == @buf.bytesize

      line = @buf.byteslice(pos, m.begin(0) - pos)
      pos = m.end(0)
      if line.empty?
        if @data
          d = @data
          @data = nil
          yield d
        end
        next
      end
      next if line.start_with?(':')

      field, value = line.split(':', 2)
      value = value.delete_prefix(' ') if value
      next unless field == 'data'

      @data = @data ? "#{@data}\n#{value}" : (value || String.new)
    end
    @buf = @buf.byteslice(pos, @buf.bytesize - pos) if pos.positive?
    raise IOError, 'SSE line over 1 MiB' if @buf.bytesize > MAX
  end
end
