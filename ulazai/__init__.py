"""The UlazAI provider: request models with every documented rule, pricing, images, results and errors."""
