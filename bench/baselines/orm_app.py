"""The ORM way, for comparison: FastAPI + SQLAlchemy 2 async ORM + asyncpg, as the tutorials write it.

Same endpoints and semantics as users-api for what the benchmark drives: create (409 on a taken
email), get by id (404), list a page with limit/after and a Link header. DATABASE_URL names the
database, as for users-api.
"""

import os
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, EmailStr
from sqlalchemy import BigInteger, DateTime, Identity, String, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

engine = create_async_engine(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+asyncpg://", 1))
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class UserCreate(BaseModel):
    email: EmailStr
    name: str


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    created_at: datetime
    updated_at: datetime


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]
app = FastAPI()


@app.post("/users", status_code=201, response_model=UserOut)
async def create_user(body: UserCreate, session: Session, response: Response) -> User:
    user = User(email=body.email, name=body.name)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise HTTPException(409, "email taken") from None
    await session.refresh(user)
    response.headers["Location"] = f"/users/{user.id}"
    return user


@app.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: int, session: Session) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise HTTPException(404, "not found")
    return user


@app.get("/users", response_model=list[UserOut])
async def list_users(
    session: Session,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    after: Annotated[int, Query(ge=0)] = 0,
    email: str | None = None,
) -> list[User]:
    if email is not None:
        found = await session.scalars(select(User).where(func.lower(User.email) == func.lower(email), User.id > after))
        return list(found)
    result = await session.scalars(select(User).where(User.id > after).order_by(User.id).limit(limit + 1))
    users = list(result)
    if len(users) > limit:
        users = users[:limit]
        response.headers["Link"] = f'</users?limit={limit}&after={users[-1].id}>; rel="next"'
    return users
