# frozen_string_literal: true
#
# peers/review/no_read_timeout.rb - review probe (not a harness): preloaded with
# `ruby -r ./peers/review/no_read_timeout.rb peers/ruby/llm_client.rb ...`, it makes every
# Net::HTTP read wait untimed (read_timeout nil). Under Async 1.30 + timers 4.1.1 each
# timed wait schedules a timer whose cancelled handle stays in a sorted Array until its
# time passes (timers/events.rb: only #first pops cancelled handles, from the end), and a
# new, later timer is inserted at the front (Array#insert, O(size)). This probe measures
# what those lingering timers cost the published Async rows.
require 'net/http'

module ReviewNoReadTimeout
  def read_timeout=(_sec)
    super(nil)
  end
end
Net::HTTP.prepend(ReviewNoReadTimeout)
