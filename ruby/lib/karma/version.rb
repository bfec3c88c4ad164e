# frozen_string_literal: true

module Karma
  VERSION = "0.1.0"
end
