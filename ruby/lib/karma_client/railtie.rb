# frozen_string_literal: true

require "rails/railtie"

module KarmaClient
  # Rails: `config.karma_client.host = ...` (any Configuration setting) in
  # config/application.rb or an environment file; applied when the app
  # initializes, with ActiveSupport::Notifications as the instrumenter and
  # Rails.logger as the logger unless set. The shared client is closed at exit.
  class Railtie < Rails::Railtie
    config.karma_client = ActiveSupport::OrderedOptions.new

    initializer "karma_client.configure" do |app|
      settings = app.config.karma_client
      KarmaClient.configure do |c|
        settings.each do |name, value|
          setter = "#{name}="
          raise ConfigurationError, "unknown config.karma_client setting #{name}" unless c.respond_to?(setter)

          c.public_send(setter, value)
        end
        c.instrumenter ||= ActiveSupport::Notifications
        c.logger ||= Rails.logger
      end
    end

    initializer "karma_client.close_at_exit" do
      at_exit { KarmaClient.close }
    end
  end
end
