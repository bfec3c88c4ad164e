# frozen_string_literal: true

module KarmaClient
  # The karma_client API version this layer provides (the 1.0 client's).
  VERSION = "0.2.0"
end
