// A small bookinfo-style application for Envoy to front: a product page, a products API and reviews, kept in memory.
import {
  createHttpApp,
  type Health,
  type Logger,
  PortcullisError,
  type ServiceMetrics,
} from '@portcullis/runtime';
import type { FastifyInstance } from 'fastify';

export interface Product {
  id: number;
  title: string;
  author: string;
  year: number;
}

export interface Review {
  productId: number;
  reviewer: string;
  stars: number;
  text: string;
}

const PRODUCTS: readonly Product[] = [
  { id: 1, title: 'The Comedy of Errors', author: 'William Shakespeare', year: 1595 },
  { id: 2, title: 'The Tempest', author: 'William Shakespeare', year: 1611 },
  { id: 3, title: 'Twelfth Night', author: 'William Shakespeare', year: 1602 },
];

const SEED_REVIEWS: readonly Review[] = [
  { productId: 1, reviewer: 'reviewer1', stars: 5, text: 'An extremely entertaining play by Shakespeare.' },
  { productId: 1, reviewer: 'reviewer2', stars: 4, text: 'Absolutely fun and entertaining.' },
  { productId: 2, reviewer: 'reviewer1', stars: 4, text: 'Stormy, strange and lovely.' },
];

/** A review body: small, and nothing but text. */
const REVIEW_BODY = {
  type: 'object',
  required: ['reviewer', 'stars', 'text'],
  additionalProperties: false,
  properties: {
    reviewer: { type: 'string', minLength: 1, maxLength: 64 },
    stars: { type: 'integer', minimum: 1, maximum: 5 },
    text: { type: 'string', minLength: 1, maxLength: 2000 },
  },
} as const;

// Path parameters arrive as strings (the shared app does not coerce types).
const PRODUCT_ID = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: '^[1-9][0-9]{0,5}$' } },
} as const;

/** Reviews kept per process, bounded so a flood of posts cannot grow memory without end. */
const MAX_REVIEWS = 1000;

export interface DemoAppDeps {
  logger: Logger;
  metrics: ServiceMetrics;
  health: Health;
}

function productOf(idParam: string): Product {
  const id = Number(idParam);
  const product = PRODUCTS.find((p) => p.id === id);
  if (!product) throw new PortcullisError('not_found', `product ${id} does not exist`);
  return product;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export async function buildDemoApp(deps: DemoAppDeps): Promise<FastifyInstance> {
  const app = await createHttpApp({ ...deps, bodyLimit: 16 * 1024 });
  const reviews: Review[] = [...SEED_REVIEWS];
  const reviewsOf = (productId: number): Review[] => reviews.filter((r) => r.productId === productId);

  app.get('/health', async () => ({ status: 'ok' }));

  app.get('/productpage', async (request, reply) => {
    const user = request.headers['x-portcullis-subject'];
    const rows = PRODUCTS.map((p) => {
      const stars = reviewsOf(p.id).map((r) => r.stars);
      const rating =
        stars.length === 0
          ? 'no reviews'
          : `${(stars.reduce((a, b) => a + b, 0) / stars.length).toFixed(1)}★`;
      return `<li>${escapeHtml(p.title)} (${p.year}), ${escapeHtml(p.author)}: ${rating}</li>`;
    }).join('');
    const greeting = typeof user === 'string' ? `<p>Signed in as ${escapeHtml(user)}</p>` : '';
    return reply
      .type('text/html; charset=utf-8')
      .send(`<!doctype html><title>Bookinfo</title><h1>Bookinfo</h1>${greeting}<ul>${rows}</ul>`);
  });

  app.get('/api/v1/products', async () => PRODUCTS);

  app.get<{ Params: { id: string } }>(
    '/api/v1/products/:id',
    { schema: { params: PRODUCT_ID } },
    async (request) => productOf(request.params.id),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/products/:id/reviews',
    { schema: { params: PRODUCT_ID } },
    async (request) => {
      const product = productOf(request.params.id);
      return { product, reviews: reviewsOf(product.id) };
    },
  );

  app.post<{ Params: { id: string }; Body: Omit<Review, 'productId'> }>(
    '/api/v1/products/:id/reviews',
    { schema: { params: PRODUCT_ID, body: REVIEW_BODY } },
    async (request, reply) => {
      const product = productOf(request.params.id);
      if (reviews.length >= MAX_REVIEWS)
        throw new PortcullisError('too_many_requests', 'the review store is full');
      const review: Review = { productId: product.id, ...request.body };
      reviews.push(review);
      return reply.status(201).send(review);
    },
  );

  app.get('/reviews', async () => reviews);

  app.get<{ Params: { id: string } }>('/reviews/:id', { schema: { params: PRODUCT_ID } }, async (request) => {
    const { id } = productOf(request.params.id);
    return { id, reviews: reviewsOf(id) };
  });

  // What reached the application: shows the headers a policy added or removed, and rewritten query parameters.
  await app.register(async (echo) => {
    // Any body, as text: the echo shows what arrived, whatever its content type.
    echo.removeAllContentTypeParsers();
    echo.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));
    echo.all('/echo', async (request) => ({
      method: request.method,
      url: request.url,
      query: request.query,
      headers: request.headers,
      body: typeof request.body === 'string' ? request.body : '',
    }));
  });

  return app;
}
